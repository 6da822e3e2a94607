"""Where recognition events go besides stdout: MQTT, HTTP webhooks, a JSON-lines file; debounced per face track.

A camera at 25 FPS sees a person standing at the door 25 times a second. Sinks get what a home-automation rule
wants instead: one ``arrived`` event when a track first gets a name (or is an unknown face), another if the name
changes, and one ``left`` event when the track ends, with how long it was seen.

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
from pathlib import Path
from typing import Any

from edgeface.errors import EdgefaceError

QUEUE_SIZE = 1000
RETRIES = 3
BACKOFF_S = 0.5


class Debouncer:
    """Turns per-frame face results into ``arrived`` / ``left`` events per track."""

    def __init__(self, max_age: int = 10) -> None:
        self.max_age = max_age  # frames without the track before it has left (the tracker forgets it then too)
        self.tracks: dict[int, dict[str, Any]] = {}
        self.frame = 0

    def update(self, results: list[dict], source: str, frame: int) -> list[dict]:
        self.frame += 1
        now = round(time.time(), 3)
        out = []
        for r in results:
            if r.get("track") is None:
                continue  # not embedded (turned away, too small): nobody to announce
            track = self.tracks.get(r["track"])
            if track is None or track["name"] != r["name"]:
                out.append({"event": "arrived", "time": now, "source": source, "frame": frame, "track": r["track"],
                            "name": r["name"], "score": r["score"], "box": r["box"]})
                first = track["first"] if track else now
                track = self.tracks[r["track"]] = {"name": r["name"], "first": first, "source": source}
            track.update(last=now, seen=self.frame, score=r["score"], box=r["box"])
        for track_id in [t for t, v in self.tracks.items() if self.frame - v["seen"] > self.max_age]:
            out.append(self._left(track_id, now))
        return out

    def _left(self, track_id: int, now: float) -> dict:
        track = self.tracks.pop(track_id)
        return {"event": "left", "time": now, "source": track["source"], "track": track_id, "name": track["name"],
                "score": track["score"], "box": track["box"], "seconds": round(track["last"] - track["first"], 3)}

    def flush(self) -> list[dict]:
        """Every open track leaves (the source ended or the loop stopped)."""
        now = round(time.time(), 3)
        return [self._left(t, now) for t in list(self.tracks)]


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


def mqtt_sink(url: str) -> QueuedSink:
    """``mqtt://host[:port]/topic``: QoS 1 publishes through paho-mqtt, which reconnects on its own."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise EdgefaceError("MQTT events need paho-mqtt: pip install 'edgeface[mqtt]'") from None
    parts = urllib.parse.urlsplit(url)
    topic = parts.path.lstrip("/")
    if not parts.hostname or not topic:
        raise EdgefaceError(f"MQTT events need mqtt://HOST[:PORT]/TOPIC, got {redact(url)!r}")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgeface-{threading.get_ident()}")
    if parts.username:
        client.username_pw_set(parts.username, parts.password)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    client.max_queued_messages_set(QUEUE_SIZE)
    client.connect_async(parts.hostname, parts.port or 1883, keepalive=30)
    client.loop_start()

    def publish(event: dict) -> None:
        if not client.is_connected():
            raise ConnectionError(f"not connected to {parts.hostname}:{parts.port or 1883}")
        info = client.publish(topic, json.dumps(event), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(mqtt.error_string(info.rc))
        info.wait_for_publish(timeout=2.0)
        if not info.is_published():
            raise TimeoutError("the broker did not acknowledge within 2 s")

    sink = QueuedSink(redact(url), publish)
    close = sink.close

    def close_and_disconnect(timeout: float = 3.0) -> dict:
        stats = close(timeout)
        client.loop_stop()
        client.disconnect()
        return stats

    sink.close = close_and_disconnect  # type: ignore[method-assign]
    return sink


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


def open_sink(spec: str) -> QueuedSink | FileSink:
    """``mqtt://...``, ``http(s)://...`` or a ``.jsonl`` path."""
    scheme = urllib.parse.urlsplit(spec).scheme
    if scheme == "mqtt":
        return mqtt_sink(spec)
    if scheme in ("http", "https"):
        return http_sink(spec)
    if scheme:
        raise EdgefaceError(f"--events takes mqtt://, http(s):// or a file path, not {scheme}://")
    return FileSink(Path(spec))


class Events:
    """The debouncer and every sink of one run."""

    def __init__(self, specs: list[str], extra: list | None = None, camera: str | None = None) -> None:
        self.sinks = [open_sink(s) for s in specs] + list(extra or [])
        self.debouncer = Debouncer()
        self.camera = camera

    def frame(self, results: list[dict], source: str, frame: int, new_photo: bool = False) -> None:
        events = self.debouncer.flush() if new_photo else []  # a new, unrelated photo: the last one's faces left
        self._send(events + self.debouncer.update(results, source, frame))

    def _send(self, events: list[dict]) -> None:
        for event in events:
            if self.camera is not None:
                event = {"camera": self.camera, **event}
            for sink in self.sinks:
                sink.send(event)

    def close(self) -> list[dict]:
        self._send(self.debouncer.flush())
        return [sink.close() for sink in self.sinks]


__all__ = ["Debouncer", "Events", "FileSink", "QueuedSink", "http_sink", "mqtt_sink", "open_sink", "redact"]
