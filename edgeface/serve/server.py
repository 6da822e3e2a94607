"""Start ``edgeface serve``: check where it may listen and with what token, then run the service under uvicorn.

The rule for biometric data: loopback needs no token (only programs on the board can reach it); any other address
needs ``--token-file``, a file only its owner may read, holding at least 16 characters. The port is bound here,
before any model is loaded, so a port in use is a one-line error.
"""

from __future__ import annotations

import ipaddress
import socket
import stat
import sys
from pathlib import Path

from edgeface.errors import EdgefaceError
from edgeface.serve.service import ServeConfig, Service

MIN_TOKEN = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> str:
    """The token in ``path``: the file must be private to its owner (as ssh insists for keys) and not trivial."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise EdgefaceError(f"--token-file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise EdgefaceError(f"--token-file {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}): "
                                f"chmod 600 {path}")
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise EdgefaceError(f"--token-file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgefaceError(f"cannot read --token-file {path}: {getattr(exc, 'strerror', None) or exc}") from None
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
                            "give --token-file (see deploy/README.md), or bind to 127.0.0.1")
    sock = bind(host, port)
    service = Service(config)
    try:
        shown = f"[{host}]" if ":" in host else host
        print(f"edgeface serve: http://{shown}:{sock.getsockname()[1]}/ (API docs at /docs)", flush=True)
        server = uvicorn.Server(uvicorn.Config(guarded_app(service, token), log_level="warning", access_log=False,
                                               timeout_graceful_shutdown=3))
        server.run(sockets=[sock])
    finally:
        service.close()
        sock.close()
    print("edgeface serve: stopped", file=sys.stderr, flush=True)
