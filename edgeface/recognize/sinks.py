"""How events leave the process: a bounded queue drained by a thread per network sink (retries with back-off, the
oldest dropped and counted when full), HTTP webhooks, a JSON-lines file, and the options every sink reads. Shared by
``events`` (which turns frames into arrivals and departures) and ``mqtt`` (the MQTT and Home Assistant sink).
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

from edgeface.errors import EdgefaceError

QUEUE_SIZE = 1000
RETRIES = 3
BACKOFF_S = 0.5


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
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.password is None and parts.username is None:
            return url
        return with_userinfo(parts, f"{parts.username or ''}{':***' if parts.password is not None else ''}@")
    except ValueError:  # a URL too broken to parse: show none of what might be its userinfo
        return url.rsplit("@", 1)[-1] if "@" in url else url


def checked_url(url: str, schemes: tuple[str, ...], shape: str) -> urllib.parse.SplitResult:
    """``url`` parsed, or one line saying what is wrong with it: a scheme of ``schemes``, a host, a port from 1 to
    65535, no fragment (``#`` would silently cut the rest off)."""
    shown = redact(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EdgefaceError(f"events URL {shown!r} is not valid ({exc}): use {shape}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise EdgefaceError(f"events URL {shown!r} is not valid: use {shape}")
    if port == 0:
        raise EdgefaceError(f"events URL {shown!r} has port 0: use a port from 1 to 65535")
    if "#" in url:
        raise EdgefaceError(f"events URL {shown!r} has a '#': it is not part of any topic or address")
    return parts


def http_sink(url: str, timeout: float = 2.0) -> QueuedSink:
    """POST each event as JSON; ``user:password@`` in the URL becomes HTTP basic auth (urllib would take it for
    part of the host name)."""
    import base64

    parts, shown = checked_url(url, ("http", "https"), "http(s)://HOST[:PORT]/PATH"), redact(url)
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
