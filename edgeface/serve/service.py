"""The work behind ``edgeface serve``: one camera loop and one request worker, each with its own interpreters.

Why two pipelines: LiteRT interpreters and SQLite connections belong to one thread each. The camera thread runs the
same loop as ``edgeface recognize`` (tracking, confirmation, events) on its own model, detector and read-only gallery
connection; every HTTP request that needs the model (recognise, verify, enrol) runs on a single worker thread with a
second set. Requests therefore queue behind each other, never behind or in front of the camera, and the queue is
bounded: past ``max_pending`` waiting requests the service answers 503 at once instead of piling up memory.
Enrolments committed by the worker reach the camera at its next frame (the gallery re-reads on another commit).
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import math
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.recognize.capture import source_kind
from edgeface.recognize.config import DEFAULT_STREAM_FPS, PipelineConfig
from edgeface.recognize.events import face_jpeg
from edgeface.recognize.gallery import Gallery, GalleryMoved
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
CAPTURES_KEPT, CAPTURE_SECONDS = 8, 300.0  # live captures held for confirmation: how many, how long


def yield_to_camera() -> None:
    """Lower the request worker's CPU priority (Linux nices threads one by one): on a 2- or 4-core board a burst of
    uploads then takes the cores the camera leaves idle instead of halving its frame rate."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)


class Captures:
    """Frames held for enrolment after their preview (``Service.capture``): the newest few, for a few minutes, so
    what is enrolled is the face the user saw and confirmed, not whoever is in view when they click."""

    def __init__(self, size: int = CAPTURES_KEPT, seconds: float = CAPTURE_SECONDS) -> None:
        self.size, self.seconds = size, seconds
        self.held: dict[str, tuple[float, np.ndarray]] = {}
        self.lock = threading.Lock()

    def hold(self, rgb: np.ndarray) -> str:
        key = secrets.token_urlsafe(8)
        with self.lock:
            now = time.monotonic()
            self.held = {k: v for k, v in self.held.items() if now - v[0] < self.seconds}
            while len(self.held) >= self.size:
                self.held.pop(next(iter(self.held)))
            self.held[key] = (now, rgb)
        return key

    def take(self, key: str) -> np.ndarray:
        with self.lock:
            held = self.held.pop(key, None)
        if held is None or time.monotonic() - held[0] >= self.seconds:
            raise EdgefaceError(f"capture {key!r} is unknown or older than {self.seconds / 60:.0f} minutes: "
                                "capture again")
        return held[1]


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
        self.frames = self.pipeline.frames(self.store, follow=False)  # the service rebuilds the whole Bound


class Service:
    """The camera loop, the request worker, the live view and the event log of one ``edgeface serve``."""

    def __init__(self, config: ServeConfig) -> None:
        config.check()
        self.config = config
        self.live = LiveView(config.stream_fps)
        self.events = EventLog()
        self.stop = threading.Event()
        self._run_stop = threading.Event()  # the current camera run's own (``run`` ends by setting it)
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
        self.captures = Captures()
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
        bound: Bound | None = None
        while not self.stop.is_set():
            config = self.config  # the model follows the gallery once it was moved (``_follow_gallery``)
            try:
                if bound is None:
                    bound = Bound(config, read_only=True)
                self.camera.update(state="running", error=None)
                # each run gets a stop of its own: a run's end sets it, and must not stop the service with it
                self._run_stop = threading.Event()
                if self.stop.is_set():
                    break
                run(config.source, bound.frames, events=config.events, extra_sinks=[self.events], loop=config.loop,
                    on_frame=self._on_frame, stop=self._run_stop, label=config.camera,
                    event_options=config.event_options)
                if self.stop.is_set():
                    break
                if not self.camera_is_live():
                    self.camera["state"] = "ended"
                    return
                self.camera.update(state="reconnecting", error="the camera stopped sending frames")
            except GalleryMoved:  # carry on at once with the model the gallery was moved to
                self._follow_gallery()
                bound = None
                continue
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
        future = self._worker.submit(self._call, fn, *args)
        future.add_done_callback(self._done)
        return future

    def _call(self, fn: Any, *args: Any) -> Any:
        """``fn`` on the worker; after another process moved the gallery to a new model (``gallery upgrade``), once
        more on a pipeline of that model."""
        try:
            return fn(*args)
        except GalleryMoved:
            self._follow_gallery()
            self._bound = Bound(self.config, read_only=False)
            return fn(*args)

    def _follow_gallery(self) -> None:
        """From now on the model is the gallery's (the one it was moved to), for the worker and the camera alike."""
        self.config = replace(self.config, pipeline=self.config.pipeline.but(model=None))

    def _done(self, _future: concurrent.futures.Future) -> None:
        with self._pending_lock:
            self._pending -= 1

    def identify(self, data: bytes, label: str = "upload") -> tuple[np.ndarray, list[RecognisedFace]]:
        """An uploaded image (RGB) and every face of it, recognised as a photo (no track to confirm over): what
        every dialect (edgeface's, DeepStack's, CompreFace's) answers from."""
        rgb = decode_image(data, label)
        return rgb, self.bound.pipeline.identify(self.bound.frames, rgb)

    def recognize(self, data: bytes, label: str = "upload") -> dict:
        rgb, results = self.identify(data, label)
        return {"width": rgb.shape[1], "height": rgb.shape[0], "faces": [r.to_dict() for r in results]}

    def ranked(self, rgb: np.ndarray, face: RecognisedFace, count: int) -> list[tuple[str, float]]:
        """The ``count`` closest enrolled people to one face of ``rgb`` (the top one alone needs no new embedding)."""
        if count <= 1 or face.reason is not None:
            return [(face.candidate, face.score)] if face.candidate is not None and face.score is not None else []
        embedding = self.bound.pipeline.embed(rgb, landmarks=[face.landmarks])[0]
        return self.bound.store.ranked(embedding, count)

    def detect(self, data: bytes, label: str = "upload") -> list[RecognisedFace]:
        return self.bound.pipeline.detect(decode_image(data, label))

    def verify(self, a: bytes, b: bytes) -> dict:
        return self.bound.pipeline.verify(decode_image(a, "a"), decode_image(b, "b"))

    def enroll(self, name: str, photos: list[tuple[str, bytes | np.ndarray]], new_person: bool = False) -> dict:
        """Photos of one person, each checked as ``edgeface enroll`` checks it (a face that is already somebody
        else is refused unless ``new_person``); the reason for each refusal."""
        result = self.bound.pipeline.enroll(self.bound.store, name, photos, new_person=new_person)
        return {**result.to_dict(), "enrolled": result.enrolled}

    def capture(self) -> dict:
        """Hold the live view's newest frame and say what enrolling it would do (its face, the closest enrolled
        person and score), without enrolling: the page shows this and asks before ``enroll_live``."""
        index, frame, _ = self.live.latest()
        if frame is None:
            raise EdgefaceError("no camera frame to capture: is the camera running?")
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        key = self.captures.hold(rgb)
        preview = self.bound.pipeline.looks_like(self.bound.store, rgb)
        face = None
        if preview.get("box"):
            x0, y0, x1, y1 = preview["box"]
            face = face_jpeg(frame, [x0, y0, x1, y1])
        return {"capture": key, "frame": index, **preview,
                "face_jpeg": base64.b64encode(face).decode() if face else None}

    def enroll_live(self, name: str, capture: str | None = None, new_person: bool = False) -> dict:
        """Enrol a held capture (``capture``), else the face now in the live view; exactly one usable face."""
        if capture is not None:
            return self.enroll(name, [(f"capture {capture}", self.captures.take(capture))], new_person)
        index, frame, _ = self.live.latest()
        if frame is None:
            raise EdgefaceError("no camera frame to capture: is the camera running?")
        return self.enroll(name, [(f"live frame {index}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))], new_person)

    def people(self) -> list[dict]:
        return self.bound.store.people()

    def face_jpeg(self, name: str) -> bytes | None:
        return self.bound.store.face_jpeg(name)

    def remove(self, name: str) -> None:
        self.bound.store.remove(name)

    def rename(self, old: str, new: str) -> None:
        self.bound.store.rename(old, new)

    def gallery(self) -> Gallery:
        """The worker's gallery connection, for the dialects' per-face operations (on the worker thread only)."""
        return self.bound.store

    @property
    def threshold(self) -> float:
        return self.bound.pipeline.threshold

    def health(self) -> dict:
        """Runs on the worker like every request: ``pending_requests`` does not count itself."""
        self.bound.store.check_model()  # the model it names is the gallery's, also after a 'gallery upgrade'
        r, store = self.bound.pipeline, self.bound.store
        return {"model": r.embedder.name, "model_id": r.model_id, "threshold": round(r.threshold, 4),
                "detector": r.detector, "gallery": {"path": str(store.path), **store.counts()},
                "camera": {**self.camera, "fps": round(self.camera_fps(), 2), "viewers": self.live.viewers},
                "pending_requests": self._pending - 1, "uptime_s": round(time.time() - self.started, 1)}

    def close(self) -> None:
        """Stop the camera (it finishes its frame and flushes its events) and the worker."""
        self.stop.set()
        self._run_stop.set()
        if self._camera_thread is not None:
            self._camera_thread.join(timeout=15)
        self._worker.shutdown(wait=True, cancel_futures=True)
