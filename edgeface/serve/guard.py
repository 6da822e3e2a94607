"""The guards every request of ``edgeface serve`` passes before any route runs (``Guard``, ASGI middleware).

* the caller must hold the token when the service has one (``Authorization: Bearer``, CompreFace's ``x-api-key``,
  the page's cookie, or ``?token=`` once; DeepStack's clients put it in the form, which its routes check). Without a
  token the service binds to loopback only, and then refuses requests whose ``Host`` is not a loopback name: a web
  page elsewhere cannot reach it through DNS rebinding;
* a request that changes anything (POST, PUT, PATCH, DELETE) must come from the service's own page or from a
  program that is no browser (``cross_site``): a browser names the page that sent a request in ``Origin`` and
  ``Sec-Fetch-Site`` and a page cannot forge either, so a request another site's page sends (a form, a ``fetch``
  without preflight, from another port of the same host, or from ``Origin: null``) is refused, token or not; and
  from a browser, the bodies it may send cross-site without asking first (``text/plain``, urlencoded forms) are
  never taken as uploads (an older browser may leave ``Origin`` off a form);
* the body is counted as it arrives and refused past the upload limit (a ``Content-Length`` that says so is refused
  before any byte is read), and must arrive within ``BODY_SECONDS`` (a client trickling bytes cannot hold a
  connection for ever); a client that leaves mid-upload ends its request quietly.
"""

from __future__ import annotations

import asyncio
import hmac
import urllib.parse
from typing import Any

from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

COOKIE = "edgeface_token"
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}
BROWSER_FORM_TYPES = {"text/plain", "application/x-www-form-urlencoded"}  # sent cross-site with no preflight
BODY_SECONDS = 120.0  # a whole request body: 20 MB at ~1.4 Mbit/s; a trickle of bytes is cut off
BODY_IDLE_SECONDS = 20.0  # the longest silence while a body arrives
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
DEEPSTACK_PREFIX = "/v1/vision/"  # DeepStack / CodeProject.AI routes: the key may come in the form


class TooLarge(Exception):
    pass


class TooSlow(Exception):
    pass


def cross_site(method: str, headers: dict[str, str]) -> str | None:
    """Why a request that would change something may not, or None. Programs (curl, Home Assistant, the Python
    clients) send no ``Origin`` and no ``Sec-Fetch-Site`` and pass; the service's own page sends its own origin."""
    if method not in CHANGES:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"a {site} request from a web page may not change anything here"
    origin = headers.get("origin")
    if origin is not None and origin not in {f"{scheme}://{headers.get('host', '')}" for scheme in ("http", "https")}:
        return f"a request from the page at {origin} may not change anything here"
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in BROWSER_FORM_TYPES and headers.get("user-agent", "").startswith("Mozilla/"):
        # an older browser may send a cross-site form without Origin; curl's --data-binary sends this type too
        return (f"Content-Type {kind} is not taken from a browser: send images as image/*, "
                "application/octet-stream or multipart/form-data")
    return None


class Guard:
    """ASGI middleware: the body limit and the token check, before any route runs."""

    def __init__(self, app: Any, max_bytes: int, token: str | None) -> None:
        self.app, self.max_bytes, self.token = app, max_bytes, token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if self.token and query.get("token") and scope["method"] == "GET" and scope["path"] == "/":
            # the page's link carries the token once: keep it in a cookie and drop it from the address bar
            response = Response(status_code=303, headers={"Location": "/"})
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            await response(scope, receive, send)
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await self.too_large(scope, receive, send)
            return
        seen = 0
        started = False
        deadline = asyncio.get_running_loop().time() + BODY_SECONDS

        async def counted() -> dict:
            nonlocal seen
            left = min(BODY_IDLE_SECONDS, deadline - asyncio.get_running_loop().time())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(left, 0.001))
            except asyncio.TimeoutError:
                raise TooSlow from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise TooLarge
            return message

        async def watched_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched_send)
        except TooLarge:
            if not started:
                await self.too_large(scope, receive, send)
        except TooSlow:
            if not started:
                await error(408, f"the request body did not arrive within {BODY_SECONDS:.0f} s")(scope, receive, send)
        except ClientDisconnect:
            pass  # the client left mid-upload: nothing to answer, nothing to log

    async def too_large(self, scope: dict, receive: Any, send: Any) -> None:
        await error(413, f"request body over the {self.max_bytes:,}-byte limit")(scope, receive, send)

    def refusal(self, scope: dict, headers: dict[str, str]) -> Response | None:
        """Why this request may not proceed, as the response to send, or None."""
        why = cross_site(scope["method"], headers)
        if why is not None:
            return error(403, why)
        if self.token is None:
            host = host_name(headers.get("host", ""))
            if host not in LOOPBACK_NAMES:
                return error(403, f"this service answers only on loopback without a token, not Host {host!r}")
            return None
        offered = [headers.get("authorization", "").removeprefix("Bearer ").strip(), headers.get("x-api-key", "")]
        cookies = [c.strip().split("=", 1) for c in headers.get("cookie", "").split(";") if "=" in c]
        offered += [v for k, v in cookies if k == COOKIE]
        offered += urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        if any(holds_token(o, self.token) for o in offered):
            return None
        if scope["path"].startswith(DEEPSTACK_PREFIX):
            # DeepStack's clients send the key as the form field api_key: the route checks it (``form_key``)
            scope.setdefault("state", {})["key_unchecked"] = True
            return None
        if scope["path"] == "/" and scope["method"] == "GET":
            return HTMLResponse("<h1>edgeface</h1><p>Open this page with <code>?token=...</code> (the contents of "
                                "the service's --token-file).</p>", status_code=401)
        return error(401, "missing or wrong token: send 'Authorization: Bearer TOKEN' (the --token-file contents)")


def holds_token(offered: str | None, token: str) -> bool:
    """Is ``offered`` the service's token? (Compared in constant time.)"""
    return bool(offered) and hmac.compare_digest(str(offered).encode(), token.encode())


def host_name(header: str) -> str:
    """The name in a Host header, without its port: ``localhost:8080`` -> ``localhost``, ``[::1]:80`` -> ``[::1]``."""
    if header.startswith("["):
        return header.split("]")[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
