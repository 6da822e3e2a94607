"""Start ``edgeface serve``: check where it may listen and with what token, then run the service under uvicorn.

The rule for biometric data: loopback needs no token (only programs on the board can reach it); any other address
needs ``--token-file``, a file only its owner may read, holding at least 16 characters. The port is bound here,
before any model is loaded, so a port in use is a one-line error.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import sys
import time
from pathlib import Path

from edgeface.errors import EdgefaceError
from edgeface.files import read_private_text
from edgeface.serve.service import ServeConfig, Service

MIN_TOKEN = 16
HEADER_SECONDS = 10.0  # a connection must send a whole request head within this long, or it is closed
SPARE_FILES = 64  # descriptors kept free of connections: the gallery, the camera, the model files, the broker
LOG_EVERY_SECONDS = 60.0  # the same server complaint (a full descriptor table) at most once a minute


def open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (a systemd service starts at 1,024 soft)
    and return it: each client connection takes one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def concurrency_limit(files: int) -> int:
    """Connections served at once: below the descriptor limit with room to spare; past it, uvicorn answers 503."""
    return max(16, min(4096, files - SPARE_FILES))


class OncePerMinute(logging.Filter):
    """One line, without a traceback, for each kind of server complaint a minute: a flood of half-open connections
    or a full descriptor table must not write a traceback per failed accept (60 MB of log in 25 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        key = f"{record.name}:{type(exc).__name__ if exc else record.getMessage()[:60]}"
        now = time.monotonic()
        if now - self.last.get(key, -LOG_EVERY_SECONDS) < LOG_EVERY_SECONDS:
            return False
        self.last[key] = now
        if exc is not None:
            record.msg, record.args = f"edgeface serve: {record.getMessage()}: {exc} (repeats are not logged for " \
                                      f"{LOG_EVERY_SECONDS:.0f} s)", ()
            record.exc_info = record.exc_text = None
        return True


def header_timeout_protocol() -> type:
    """uvicorn's HTTP protocol with a deadline for the request head: uvicorn closes idle keep-alive connections,
    but not one that connects and never sends a request (or sends it a byte at a time)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeout(H11Protocol):
        def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(HEADER_SECONDS, self._head_late)

        def _head_late(self) -> None:
            if self.cycle is None and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_timer.cancel()
            super().connection_lost(exc)

    return HeaderTimeout


class Stop(Exception):
    """SIGTERM (how systemd stops a service), raised where uvicorn hands the signal back after its own shutdown."""


def _stop_on_term(_signum: int, _frame: object) -> None:
    raise Stop


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> str:
    """The token in ``path``: the file must be private to its owner (as ssh insists for keys) and not trivial."""
    token = read_private_text(path, "--token-file")
    if len(token) < MIN_TOKEN or any(c.isspace() for c in token):
        raise EdgefaceError(f"--token-file {path} must hold one token of at least {MIN_TOKEN} characters without "
                            "spaces (for instance: openssl rand -hex 24)")
    return token


def bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise EdgefaceError(f"--port must be 0 to 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise EdgefaceError(f"--host {host!r} is not an address of this machine") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise EdgefaceError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8080, token_file: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM; the camera finishes its frame and flushes its events before the process exits."""
    try:
        import uvicorn

        from edgeface.serve.app import guarded_app
    except ImportError:
        raise EdgefaceError("edgeface serve needs its web stack: pip install 'edgeface[serve]'") from None
    config.check()
    token = read_token(token_file) if token_file is not None else None
    if token is None and not is_loopback(host):
        raise EdgefaceError(f"--host {host} would expose faces and names to the network without a password: "
                            "give --token-file (see docs/raspberry-pi.md), or bind to 127.0.0.1")
    sock = bind(host, port)
    files = open_files_limit()
    quiet = OncePerMinute()
    for name in ("asyncio", "uvicorn.error"):
        logging.getLogger(name).addFilter(quiet)
    service = Service(config)
    previous = signal.signal(signal.SIGTERM, _stop_on_term)  # uvicorn restores it and re-raises the signal into it
    try:
        shown = f"[{host}]" if ":" in host else host
        print(f"edgeface serve: http://{shown}:{sock.getsockname()[1]}/ (API docs at /docs)", flush=True)
        server = uvicorn.Server(uvicorn.Config(guarded_app(service, token), log_level="warning", access_log=False,
                                               timeout_graceful_shutdown=3, http=header_timeout_protocol(),
                                               limit_concurrency=concurrency_limit(files), timeout_keep_alive=5))
        server.run(sockets=[sock])
    except (Stop, KeyboardInterrupt):
        pass  # SIGTERM ends as SIGINT does: departures sent, presence OFF, "stopped", exit 0
    finally:
        service.close()
        sock.close()
        signal.signal(signal.SIGTERM, previous)
    print("edgeface serve: stopped", file=sys.stderr, flush=True)
