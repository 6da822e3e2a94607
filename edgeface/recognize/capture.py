"""Frame sources for the recognition loop: camera index, video file, stream URL, image file or folder.

Capture runs in its own thread. Live sources (cameras, streams) keep only the newest frame, so slow inference
drops stale frames instead of lagging behind reality; files are read in order, all frames, with a small queue
so decoding overlaps inference. A camera or stream that is down, at start-up or later, is reopened with
exponential back-off. Opening runs in a helper thread, so Ctrl-C or SIGTERM (the ``stop`` event) is honoured even
while OpenCV is blocked on a FIFO or a stream that never answers (those also time out after ``OPEN_TIMEOUT_S``).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.recognize.sinks import redact
from edgeface.vision.image import IMAGE_SUFFIXES, image_files, read_image

OPEN_TIMEOUT_S = 10.0


@dataclass
class Frame:
    index: int
    image: np.ndarray | None  # BGR uint8, None when this frame could not be read
    error: str | None = None
    source: str | None = None  # the image file, for folders and single images
    media_time: float | None = None  # a video file's frame: its position in the file, seconds


_END = object()


class SourceLost(EdgefaceError):
    """A live source that stopped for good mid-run: what was already recorded is kept."""


def source_kind(spec: str) -> str:
    if not spec.strip():
        raise EdgefaceError("--source is empty: give a camera index, a video file, a stream URL, an image or a folder")
    if spec.isdigit():
        return "camera"
    if "://" in spec:
        return "stream"
    path = Path(spec)
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise EdgefaceError(f"source not found: {spec}")
    if not path.is_file():  # a fifo or device would block the reader forever
        raise EdgefaceError(f"source {spec} is not a regular file")
    return "image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"


# opener threads given up on while still inside OpenCV (a stream that accepts and never answers): the process must
# not run its exit-time C++ destructors under them (``terminate called without an active exception``, SIGABRT), so
# ``edgeface``'s exit leaves with ``os._exit`` while one is alive (``cli.main``)
ABANDONED: list[threading.Thread] = []


def stuck_openers() -> bool:
    return any(thread.is_alive() for thread in ABANDONED)


class Capture:
    """Iterate frames of any source; ``live`` sources drop stale frames. Use as a context manager."""

    def __init__(self, spec: str, retries: int = 5, backoff: float = 0.5, loop: bool = False,
                 stop: threading.Event | None = None, deadline: float | None = None) -> None:
        """``deadline`` (``time.monotonic()``): a live source that is down at start-up is retried until then at
        most (``recognize --max-seconds``), not for the whole back-off."""
        self.spec = spec
        self.shown = redact(spec)  # for messages: a stream URL's password is never printed
        self.loop = loop  # replay a video file from the start at its end (soak tests, demos)
        self.kind = source_kind(spec)
        self.live = self.kind in ("camera", "stream")
        self.retries, self.backoff, self.deadline = retries, backoff, deadline
        self.dropped = 0
        self.fps = 25.0
        self._queue: queue.Queue = queue.Queue(maxsize=1 if self.live else 4)
        self._stop = stop or threading.Event()
        self._thread: threading.Thread | None = None
        self._cap: cv2.VideoCapture | None = None
        self._error: str | None = None
        # a folder's images are listed here, where an empty folder is an error the caller sees (as `detect` lists)
        self._files = image_files(Path(spec))[0] if self.kind in ("folder", "image") else []
        if self.kind in ("camera", "stream", "video"):
            self._cap = self._open_at_start()
            fps = self._cap.get(cv2.CAP_PROP_FPS)
            if fps and 1 <= fps <= 240:
                self.fps = float(fps)

    def _open(self) -> cv2.VideoCapture:
        """Open the source in a helper thread; give up after OPEN_TIMEOUT_S or when ``stop`` is set."""
        what = {"camera": "camera", "stream": "stream", "video": "video file"}[self.kind]
        box: list[cv2.VideoCapture] = []

        def opener() -> None:
            if self.kind == "stream":
                timeout = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(OPEN_TIMEOUT_S * 1000),
                           cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(OPEN_TIMEOUT_S * 1000)]
                box.append(cv2.VideoCapture(self.spec, cv2.CAP_ANY, timeout))
            else:
                box.append(cv2.VideoCapture(int(self.spec) if self.kind == "camera" else self.spec))

        thread = threading.Thread(target=opener, name="open-source", daemon=True)
        thread.start()
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while thread.is_alive():  # a short join keeps this thread free to see Ctrl-C / SIGTERM
            thread.join(0.1)
            if self._stop.is_set():
                ABANDONED.append(thread)
                raise EdgefaceError(f"interrupted while opening {what} {self.shown}")
            if time.monotonic() > deadline:
                ABANDONED.append(thread)
                raise EdgefaceError(f"{what} {self.shown} did not open within {OPEN_TIMEOUT_S:.0f} s")
        cap = box[0] if box else None
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            raise EdgefaceError(f"cannot open {what} {self.shown}")
        return cap

    def _open_at_start(self) -> cv2.VideoCapture:
        """Files open or fail at once; a live source that is down is retried with back-off first."""
        failures = 0
        while True:
            try:
                return self._open()
            except EdgefaceError:
                failures += 1
                if not self.live or failures > self.retries or self._stop.is_set():
                    raise
                pause = self.backoff * 2 ** (failures - 1)
                if self.deadline is not None and time.monotonic() + pause > self.deadline:
                    raise
                print(f"edgeface: {self.shown} is not answering; retry {failures} of {self.retries}", file=sys.stderr)
                if self._stop.wait(pause):
                    raise

    def __enter__(self) -> Capture:
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread:
            self._thread.join(timeout=5)
        if self._cap is not None:
            self._cap.release()

    def _put(self, item: object) -> None:
        if self.live and item is not _END:
            try:
                self._queue.get_nowait()  # the consumer is behind: the older frame is stale
                self.dropped += 1
            except queue.Empty:
                pass
            self._queue.put(item)
            return
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            if self.kind in ("folder", "image"):
                for i, path in enumerate(self._files):
                    if self._stop.is_set():
                        return
                    self._put(self._read_file(i, path))
            else:
                self._read_video()
        finally:
            self._put(_END)

    @staticmethod
    def _read_file(index: int, path: Path) -> Frame:
        try:
            return Frame(index, np.ascontiguousarray(read_image(path)[..., ::-1]), source=str(path))
        except EdgefaceError as exc:
            return Frame(index, None, str(exc), source=str(path))

    def _read_video(self) -> None:
        index, failures = 0, 0
        assert self._cap is not None
        while not self._stop.is_set():
            ok, image = self._cap.read()
            if ok and image is not None and image.size:
                failures = 0
                position = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000 if self.kind == "video" else None
                self._put(Frame(index, image, media_time=position))
                index += 1
                continue
            if not self.live:
                if self.loop and index:
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                return  # end of file
            failures += 1
            if failures > self.retries:
                self._error = f"{self.kind} {self.shown} lost after {self.retries} reconnection attempts"
                return
            if self._stop.wait(self.backoff * 2 ** (failures - 1)):
                return
            self._cap.release()
            try:
                self._cap = self._open()
            except EdgefaceError:
                continue

    def __iter__(self) -> Iterator[Frame]:
        while True:
            try:
                item = self._queue.get(timeout=0.2)  # wake up now and then to see ``stop``
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if item is _END:
                if self._error:
                    raise SourceLost(self._error)
                return
            yield item
