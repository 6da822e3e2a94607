"""What the camera loop hands to web clients: the newest annotated frame and the recent events.

Both are written by the camera thread and read by any number of HTTP clients, so both follow one rule: the camera
thread only stores a reference and notifies (microseconds); every cost a client causes (drawing, JPEG encoding,
waiting on a slow socket) is paid on the client's side. A client that reads slowly skips frames; it never makes the
camera wait, and never makes the other clients wait.
"""

from __future__ import annotations

import threading
from collections import deque

import cv2
import numpy as np

from edgeface.recognize.config import DEFAULT_STREAM_FPS
from edgeface.recognize.loop import draw
from edgeface.recognize.results import RecognisedFace

STREAM_WIDTH = 960  # the live view is for eyes: a 1080p frame is sent at this width (a quarter of the bytes)
JPEG_QUALITY = 75


class LiveView:
    """The newest camera frame and its results; JPEG-encoded once per frame, on demand, for every viewer."""

    def __init__(self, max_fps: float = DEFAULT_STREAM_FPS) -> None:
        self.lock = threading.Lock()
        self.index = 0  # frames published so far
        self.frame: np.ndarray | None = None
        self.results: list[RecognisedFace] = []
        self.fps = 0.0
        self.min_interval = 1.0 / max_fps
        self._jpeg: tuple[int, bytes] | None = None
        self._encode = threading.Lock()
        self.viewers = 0

    def publish(self, frame_bgr: np.ndarray, results: list[RecognisedFace], fps: float) -> None:
        """Called by the camera loop for every frame: store a reference, nothing else."""
        with self.lock:
            self.frame, self.results, self.fps = frame_bgr, results, fps
            self.index += 1

    def latest(self) -> tuple[int, np.ndarray | None, list[dict]]:
        with self.lock:
            return self.index, self.frame, self.results

    def jpeg(self) -> tuple[int, bytes] | None:
        """The newest frame, drawn and encoded; one encoding per frame however many viewers ask."""
        index, frame, results = self.latest()
        if frame is None:
            return None
        with self._encode:
            if self._jpeg is None or self._jpeg[0] != index:
                image = frame.copy()  # the loop's frame is never drawn on
                draw(image, results, self.fps)
                if image.shape[1] > STREAM_WIDTH:
                    height = round(image.shape[0] * STREAM_WIDTH / image.shape[1])
                    image = cv2.resize(image, (STREAM_WIDTH, height), interpolation=cv2.INTER_AREA)
                ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if ok:
                    self._jpeg = (index, data.tobytes())
            return self._jpeg


class EventLog:
    """An event sink for the loop (``send``/``close``) that keeps the newest events in memory, numbered, for
    ``GET /api/events`` and the live event stream."""

    def __init__(self, size: int = 1000) -> None:
        self.name = "web"
        self.events: deque[dict] = deque(maxlen=size)
        self.lock = threading.Lock()
        self.last_id = 0  # also how many were sent

    def send(self, event: dict) -> None:
        with self.lock:
            self.last_id += 1
            self.events.append({"id": self.last_id, **event})

    def close(self, timeout: float = 0.0) -> dict:
        return {"sink": self.name, "sent": self.last_id, "dropped": 0, "failed": 0}

    def page(self, limit: int = 50, before: int | None = None) -> dict:
        """Newest first: ``limit`` events with ids below ``before``, and the ``before`` of the next page."""
        with self.lock:
            chosen = [e for e in reversed(self.events) if before is None or e["id"] < before][:limit]
            more = bool(chosen) and chosen[-1]["id"] > self.events[0]["id"]
        return {"events": chosen, "next": chosen[-1]["id"] if more else None}

    def after(self, last: int) -> list[dict]:
        """Events newer than ``last``, oldest first (what a live stream has not sent yet)."""
        with self.lock:
            return [e for e in self.events if e["id"] > last] if self.last_id > last else []
