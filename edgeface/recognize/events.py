"""Where recognition events go besides stdout: MQTT (``edgeface.recognize.mqtt``), HTTP webhooks, a JSON-lines file.

A camera at 25 FPS sees a person standing at the door 25 times a second. Sinks get what a home-automation rule
wants instead: one ``arrived`` event when a person appears (or an unknown face, if wanted) and one ``left`` event
when they are gone, with how long they were seen (``Debouncer``).

Delivery never holds up the frame loop. Each network sink has a bounded queue drained by its own thread: when the
endpoint is down, events are retried with back-off, and when the queue is full the oldest are dropped and counted.
The summary reports sent, dropped and failed counts per sink.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.vision.image import square_jpeg

QUEUE_SIZE = 1000
RETRIES = 3
BACKOFF_S = 0.5


class Debouncer:
    """Turns per-frame face results into ``arrived`` / ``left`` events.

    A named person is present while any face track carries their name: one ``arrived`` when the first does, one
    ``left`` (with how long they were seen) when the last ends or turns into someone else, so a track that splits
    in two never announces the same person twice. An unknown face is announced per track, and only with
    ``unknown``. A track that gets a name, or changes it, leaves its old name before it arrives as the new one; a
    named track whose match dips below the threshold for a few frames keeps its name (the same face on the same
    track: a presence sensor should not flicker).
    """

    def __init__(self, max_age: int = 10, unknown: bool = True) -> None:
        self.max_age = max_age  # frames without the track before it has left (the tracker forgets it then too)
        self.unknown = unknown
        self.tracks: dict[int, dict[str, Any]] = {}  # track -> its name and the frame it was last seen in
        self.present: dict[str, dict[str, Any]] = {}  # person (or an unknown track's key) -> presence
        self.frame = 0

    @staticmethod
    def key(name: str, track: int) -> str:
        return f"unknown#{track}" if name == "unknown" else name

    def update(self, results: list[dict], source: str, frame: int, media_time: float | None = None) -> list[dict]:
        self.frame += 1
        now = round(time.time(), 3)
        stamp = {"time": now, "source": source, "frame": frame,
                 **({"media_time": round(media_time, 3)} if media_time is not None else {})}
        clock = now if media_time is None else media_time  # a file's time, not how fast it was processed
        out = []
        for r in results:
            track_id = r.get("track")
            if track_id is None:
                continue  # not embedded (turned away, too small): nobody to announce
            track = self.tracks.get(track_id)
            if track is not None and track["name"] != "unknown" and r["name"] == "unknown":
                r = {**r, "name": track["name"]}  # a named face whose match dips for a frame is still that person
            if track is not None and track["name"] != r["name"]:
                out += self._drop(track_id, stamp)
                track = None
            key = self.key(r["name"], track_id)
            if track is None:
                track = self.tracks[track_id] = {"name": r["name"]}
                presence = self.present.get(key)
                if presence is None:
                    presence = self.present[key] = {"first": clock, "tracks": set()}
                    if r["name"] != "unknown" or self.unknown:
                        out.append({"event": "arrived", **stamp, "track": track_id, "name": r["name"],
                                    "score": r["score"], "box": r["box"]})
                presence["tracks"].add(track_id)
            track["seen"] = self.frame
            self.present[key].update(last=clock, score=r["score"], box=r["box"], track=track_id, source=source,
                                     frame=frame)
        for track_id in [t for t, v in self.tracks.items() if self.frame - v["seen"] > self.max_age]:
            out += self._drop(track_id, stamp)
        return out

    def _drop(self, track_id: int, stamp: dict) -> list[dict]:
        """The track ends (or changes name); its person leaves when it was their last track."""
        track = self.tracks.pop(track_id)
        key = self.key(track["name"], track_id)
        presence = self.present[key]
        presence["tracks"].discard(track_id)
        if presence["tracks"]:
            return []
        del self.present[key]
        if track["name"] == "unknown" and not self.unknown:
            return []
        return [{"event": "left", **stamp, "source": presence["source"], "frame": presence["frame"],
                 "track": presence["track"], "name": track["name"], "score": presence["score"],
                 "box": presence["box"], "seconds": round(presence["last"] - presence["first"], 3)}]

    def flush(self, media_time: float | None = None) -> list[dict]:
        """Every open track leaves (the source ended, the loop stopped, or the next photo is unrelated)."""
        stamp = {"time": round(time.time(), 3),
                 **({"media_time": round(media_time, 3)} if media_time is not None else {})}
        out = []
        for track_id in list(self.tracks):
            out += self._drop(track_id, stamp)
        return out


class QueuedSink:
    """A sink whose deliveries run on a background thread from a bounded queue: never blocks, never grows."""

    def __init__(self, name: str, deliver: Callable[[dict], None], size: int = QUEUE_SIZE) -> None:
        self.name = name
        self.deliver = deliver
        self.queue: queue.Queue[dict | None] = queue.Queue(maxsize=size)
        self.sent = self.dropped = self.failed = 0
        self.last_error: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"events-{name}", daemon=True)
        self.thread.start()

    def send(self, event: dict) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            try:  # keep the newest: drop the oldest waiting event
                self.queue.get_nowait()
                self.dropped += 1
            except queue.Empty:
                pass
            try:
                self.queue.put_nowait(event)
            except queue.Full:
                self.dropped += 1

    def _run(self) -> None:
        while True:
            event = self.queue.get()
            if event is None:
                return
            for attempt in range(RETRIES):
                try:
                    self.deliver(event)
                    self.sent += 1
                    break
                except Exception as exc:  # any transport error: count it, back off, retry, then give up
                    self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                    if attempt + 1 < RETRIES:
                        time.sleep(BACKOFF_S * 2**attempt)
            else:
                self.failed += 1

    def close(self, timeout: float = 3.0) -> dict:
        """Give the queue ``timeout`` seconds to drain, then report; what is left counts as dropped."""
        deadline = time.monotonic() + timeout
        while not self.queue.empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        left = self.queue.qsize()
        self.dropped += left
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)
        self.thread.join(timeout=max(0.0, deadline - time.monotonic()) + 0.5)
        return {"sink": self.name, "sent": self.sent, "dropped": self.dropped, "failed": self.failed,
                **({"last_error": self.last_error} if self.last_error else {})}


def with_userinfo(parts: urllib.parse.SplitResult, userinfo: str) -> str:
    """The URL of ``parts`` with ``userinfo`` (``"user:***@"``, or ``""`` for none) in place of its own."""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return urllib.parse.urlunsplit(parts._replace(netloc=userinfo + host + (f":{parts.port}" if parts.port else "")))


def redact(url: str) -> str:
    """A URL as it may be shown: ``user:password@`` becomes ``user:***@`` (summaries, --json, errors)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    return with_userinfo(parts, f"{parts.username or ''}{':***' if parts.password is not None else ''}@")


def http_sink(url: str, timeout: float = 2.0) -> QueuedSink:
    """POST each event as JSON; ``user:password@`` in the URL becomes HTTP basic auth (urllib would take it for
    part of the host name)."""
    import base64

    parts, shown = urllib.parse.urlsplit(url), redact(url)
    headers = {"Content-Type": "application/json"}
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        url = with_userinfo(parts, "")

    def post(event: dict) -> None:
        request = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST", headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status >= 300:
                raise urllib.error.HTTPError(shown, response.status, "not accepted", response.headers, None)

    return QueuedSink(shown, post)


class FileSink:
    """JSON lines appended to a file, flushed per event (tail -f friendly)."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise EdgefaceError(f"--events folder does not exist: {folder}")
        if path.exists() and not path.is_file():  # a fifo would block the run before its first frame
            raise EdgefaceError(f"--events {path} is not a regular file")
        try:
            # names, times and boxes of people: private to the user, as galleries are
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o600)
            self.handle = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as exc:
            raise EdgefaceError(f"cannot write events to {path}: {exc.strerror}") from None
        self.sent = 0

    def send(self, event: dict) -> None:
        self.handle.write(json.dumps(event) + "\n")
        self.handle.flush()
        self.sent += 1

    def close(self, timeout: float = 0.0) -> dict:
        self.handle.close()
        return {"sink": self.name, "sent": self.sent, "dropped": 0, "failed": 0}


@dataclass
class EventOptions:
    """What the sinks get beyond the events themselves (``recognize`` and ``serve`` options)."""

    unknown: bool = True  # events for faces that match nobody (per track)
    snapshots: bool = False  # MQTT: the face of each arrival as a JPEG, retained on its person's topic
    discovery: bool = False  # MQTT: Home Assistant discovery of a presence sensor per enrolled person
    mqtt_ca: Path | None = None  # mqtts://: the CA that signed the broker's certificate (default: the system's)
    mqtt_password_file: Path | None = None  # else EDGEFACE_MQTT_PASSWORD; never in the URL


def open_sink(spec: str, options: EventOptions | None = None, camera: str = "camera",
              people: list[str] | None = None, model: str = "") -> QueuedSink | FileSink:
    """``mqtt(s)://...``, ``http(s)://...`` or a ``.jsonl`` path."""
    scheme = urllib.parse.urlsplit(spec).scheme
    if scheme in ("mqtt", "mqtts"):
        from edgeface.recognize.mqtt import mqtt_sink

        return mqtt_sink(spec, options or EventOptions(), camera, people or [], model)
    if scheme in ("http", "https"):
        return http_sink(spec)
    if scheme:
        raise EdgefaceError(f"--events takes mqtt(s)://, http(s):// or a file path, not {scheme}://")
    return FileSink(Path(spec))


def face_jpeg(image_bgr: np.ndarray, box: list[float]) -> bytes | None:
    """The face in a square 1.5 times its size, at most 320 px a side, as JPEG: a snapshot of an arrival."""
    x0, y0, x1, y1 = box
    snapshot = square_jpeg(image_bgr, (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(x1 - x0, y1 - y0), 320, 85)
    return snapshot[0] if snapshot else None


class Events:
    """The debouncer and every sink of one run; each event names the ``camera``."""

    def __init__(self, specs: list[str], extra: list | None = None, camera: str | None = None,
                 options: EventOptions | None = None, people: list[str] | None = None, model: str = "") -> None:
        self.options = options or EventOptions()
        self.camera = camera
        self.sinks = [open_sink(s, self.options, camera or "camera", people, model) for s in specs] + list(extra or [])
        self.snapshot_sinks = {id(sink) for sink in self.sinks if getattr(sink, "snapshots", False)}
        self.debouncer = Debouncer(unknown=self.options.unknown)

    def frame(self, results: list[dict], source: str, frame: int, new_photo: bool = False,
              image: np.ndarray | None = None, media_time: float | None = None) -> None:
        """One frame's results (``image``: the BGR frame, for snapshots; ``media_time``: its position in a file)."""
        events = self.debouncer.flush(media_time) if new_photo else []  # a new, unrelated photo: the last one's
        self._send(events + self.debouncer.update(results, source, frame, media_time), image)

    def _send(self, events: list[dict], image: np.ndarray | None = None) -> None:
        for event in events:
            if self.camera is not None:
                event = {"camera": self.camera, **event}
            snapshot = face_jpeg(image, event["box"]) if self.snapshot_sinks and image is not None and \
                event["event"] == "arrived" else None
            for sink in self.sinks:
                sink.send({**event, "_snapshot": snapshot} if snapshot and id(sink) in self.snapshot_sinks else event)

    def close(self) -> list[dict]:
        self._send(self.debouncer.flush())
        return [sink.close() for sink in self.sinks]


__all__ = ["Debouncer", "EventOptions", "Events", "FileSink", "QueuedSink", "http_sink", "open_sink", "redact"]
