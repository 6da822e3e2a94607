"""The work behind ``edgeface serve``: one camera loop and one request worker, each with its own interpreters.

Why two pipelines: LiteRT interpreters and SQLite connections belong to one thread each. The camera thread runs the
same loop as ``edgeface recognize`` (tracking, confirmation, events) on its own model, detector and read-only gallery
connection; every HTTP request that needs the model (recognise, verify, enrol) runs on a single worker thread with a
second set. Requests therefore queue behind each other, never behind or in front of the camera, and the queue is
bounded: past ``max_pending`` waiting requests the service answers 503 at once instead of piling up memory.
Enrolments committed by the worker reach the camera at its next frame (the gallery re-reads on another commit).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.recognize.capture import source_kind
from edgeface.recognize.config import DEFAULT_STREAM_FPS, PipelineConfig
from edgeface.recognize.loop import run
from edgeface.recognize.pipeline import Pipeline
from edgeface.recognize.results import RecognisedFace
from edgeface.recognize.sinks import EventOptions, redact
from edgeface.serve.live import EventLog, LiveView
from edgeface.vision.image import decode_image

MAX_UPLOAD_BYTES = 20_000_000  # one request body: a few phone photos
MAX_PENDING = 64  # requests waiting for the worker before the service says it is busy
RECONNECT_S = 5.0  # a lost camera is reopened after this long, for as long as the service runs
WORKER_NICE = 10  # the request worker's CPU priority below the camera's


def yield_to_camera() -> None:
    """Lower the request worker's CPU priority (Linux nices threads one by one): on a 2- or 4-core board a burst of
    uploads then takes the cores the camera leaves idle instead of halving its frame rate."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)


class Busy(EdgefaceError):
    """More requests are waiting than the service queues."""


@dataclass
class ServeConfig:
    """What ``edgeface serve`` runs: the recognition pipeline's settings, the gallery, the camera, and the server's
    own limits."""

    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    gallery: Path | None = None
    source: str | None = None  # camera index, video file, stream URL; None: the API alone
    camera: str | None = None  # the name events carry (default: the source, password hidden)
    loop: bool = False  # replay a video file (demos and tests)
    events: list[str] = field(default_factory=list)  # more sinks, as recognize --events
    event_options: EventOptions = field(default_factory=EventOptions)
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_pending: int = MAX_PENDING
    stream_fps: float = DEFAULT_STREAM_FPS

    def check(self) -> None:
        """The server's own settings' ranges, before any model is loaded (the pipeline's checked itself)."""
        if self.source is not None:
            source_kind(self.source)  # a missing file is an error now, not a camera that keeps reconnecting
        if not 1 <= self.max_pending <= 10_000:
            raise EdgefaceError(f"max_pending must be 1 to 10000, got {self.max_pending}")
        if not (math.isfinite(self.stream_fps) and 0.5 <= self.stream_fps <= 60):
            raise EdgefaceError(f"--stream-fps must be 0.5 to 60, got {self.stream_fps}")


class Bound:
    """The pipeline, a connection to the gallery and its frame recogniser, made and used on one thread. The
    worker's may create the gallery (enrolment from the browser starts from nothing); the camera's only reads it."""

    def __init__(self, config: ServeConfig, read_only: bool) -> None:
        self.pipeline = Pipeline.for_gallery(config.gallery, config.pipeline)
        self.store = self.pipeline.open_gallery(config.gallery, create=not read_only, read_only=read_only)
        self.frames = self.pipeline.frames(self.store)


class Service:
    """The camera loop, the request worker, the live view and the event log of one ``edgeface serve``."""

    def __init__(self, config: ServeConfig) -> None:
        config.check()
        self.config = config
        self.live = LiveView(config.stream_fps)
        self.events = EventLog()
        self.stop = threading.Event()
        self.started = time.time()
        self.camera: dict[str, Any] = {"state": "off" if config.source is None else "starting",
                                       "source": redact(config.source) if config.source else None,
                                       "frames": 0, "error": None}
        self._frame_times: deque[float] = deque(maxlen=64)
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edgeface-requests",
                                                             initializer=yield_to_camera)
        self._bound: Bound | None = None
        # the worker's pipeline first: it creates the gallery the camera then opens read-only
        self._worker.submit(self._make_pipeline).result()
        self._camera_thread: threading.Thread | None = None
        if config.source is not None:
            self._camera_thread = threading.Thread(target=self._camera, name="edgeface-camera", daemon=True)
            self._camera_thread.start()

    def _make_pipeline(self) -> None:
        self._bound = Bound(self.config, read_only=False)

    @property
    def bound(self) -> Bound:
        assert self._bound is not None
        return self._bound

    # -- the camera ----------------------------------------------------------------------------------------------

    def _on_frame(self, frame: np.ndarray, results: list[RecognisedFace], fps: float) -> None:
        self._frame_times.append(time.monotonic())
        self.camera["frames"] += 1
        self.live.publish(frame, results, fps)

    def _camera(self) -> None:
        """Run the recognition loop until the service stops. A camera or stream that is lost or fails is reopened
        after a pause, for as long as the service runs; a video file that ends (without ``loop``) stays ended."""
        config = self.config
        bound: Bound | None = None
        while not self.stop.is_set():
            try:
                if bound is None:
                    bound = Bound(config, read_only=True)
                self.camera.update(state="running", error=None)
                run(config.source, bound.frames, events=config.events, extra_sinks=[self.events], loop=config.loop,
                    on_frame=self._on_frame, stop=self.stop, label=config.camera,
                    event_options=config.event_options)
                if self.stop.is_set():
                    break
                if not self.camera_is_live():
                    self.camera["state"] = "ended"
                    return
                self.camera.update(state="reconnecting", error="the camera stopped sending frames")
            except Exception as exc:  # nothing may end the camera for good while the service runs
                message = str(exc) if isinstance(exc, EdgefaceError) else f"{type(exc).__name__}: {exc}"
                self.camera.update(state="reconnecting", error=message[:300])
            self.stop.wait(RECONNECT_S)
        self.camera["state"] = "stopped"

    def camera_is_live(self) -> bool:
        return self.config.source is not None and source_kind(self.config.source) in ("camera", "stream")

    def camera_fps(self) -> float:
        """Frames a second over the last few seconds (0 when the camera is not sending)."""
        times = list(self._frame_times)
        if len(times) < 2 or time.monotonic() - times[-1] > 2.0:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)

    # -- requests ------------------------------------------------------------------------------------------------

    def submit(self, fn, *args: Any) -> concurrent.futures.Future:
        """Queue work for the worker thread, or raise Busy when ``max_pending`` requests already wait."""
        with self._pending_lock:
            if self._pending >= self.config.max_pending:
                raise Busy(f"busy: {self._pending} requests are waiting; try again shortly")
            self._pending += 1
        future = self._worker.submit(fn, *args)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: concurrent.futures.Future) -> None:
        with self._pending_lock:
            self._pending -= 1

    def recognize(self, data: bytes, label: str = "upload") -> dict:
        """Every face of an uploaded image, recognised as a photo (no track to confirm over)."""
        rgb = decode_image(data, label)
        results = self.bound.pipeline.identify(self.bound.frames, rgb)
        return {"width": rgb.shape[1], "height": rgb.shape[0], "faces": [r.to_dict() for r in results]}

    def verify(self, a: bytes, b: bytes) -> dict:
        return self.bound.pipeline.verify(decode_image(a, "a"), decode_image(b, "b"))

    def enroll(self, name: str, photos: list[tuple[str, bytes | np.ndarray]]) -> dict:
        """Photos of one person, each checked as ``edgeface enroll`` checks it; the reason for each refusal."""
        result = self.bound.pipeline.enroll(self.bound.store, name, photos)
        return {**result.to_dict(), "enrolled": result.enrolled}

    def enroll_live(self, name: str) -> dict:
        """Enrol the face now in the live view (it must hold exactly one usable face)."""
        index, frame, _ = self.live.latest()
        if frame is None:
            raise EdgefaceError("no camera frame to capture: is the camera running?")
        return self.enroll(name, [(f"live frame {index}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))])

    def people(self) -> list[dict]:
        return self.bound.store.people()

    def face_jpeg(self, name: str) -> bytes | None:
        return self.bound.store.face_jpeg(name)

    def remove(self, name: str) -> None:
        self.bound.store.remove(name)

    def rename(self, old: str, new: str) -> None:
        self.bound.store.rename(old, new)

    def health(self) -> dict:
        """Runs on the worker like every request: ``pending_requests`` does not count itself."""
        r, store = self.bound.pipeline, self.bound.store
        return {"model": r.embedder.name, "model_id": r.model_id, "threshold": round(r.threshold, 4),
                "detector": r.detector, "gallery": {"path": str(store.path), **store.counts()},
                "camera": {**self.camera, "fps": round(self.camera_fps(), 2), "viewers": self.live.viewers},
                "pending_requests": self._pending - 1, "uptime_s": round(time.time() - self.started, 1)}

    def close(self) -> None:
        """Stop the camera (it finishes its frame and flushes its events) and the worker."""
        self.stop.set()
        if self._camera_thread is not None:
            self._camera_thread.join(timeout=15)
        self._worker.shutdown(wait=True, cancel_futures=True)
