"""The HTTP face of ``edgeface serve``: a REST API (OpenAPI at /docs), live streams and the web page.

Routes only parse and answer; the work is ``Service``'s. Every request passes the guards first (``Guard``):

* the caller must hold the token when the service has one. Without a token the service binds to loopback only, and
  then refuses requests whose ``Host`` is not a loopback name: a web page elsewhere cannot reach it through DNS
  rebinding;
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
import json
import urllib.parse
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from edgeface.errors import EdgefaceError
from edgeface.serve.service import Busy, Service

COOKIE = "edgeface_token"
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}
BROWSER_FORM_TYPES = {"text/plain", "application/x-www-form-urlencoded"}  # sent cross-site with no preflight
BODY_SECONDS = 120.0  # a whole request body: 20 MB at ~1.4 Mbit/s; a trickle of bytes is cut off
BODY_IDLE_SECONDS = 20.0  # the longest silence while a body arrives
MAX_FILES = 20  # photos in one enrolment request
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


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
        offered = [headers.get("authorization", "").removeprefix("Bearer ").strip()]
        cookies = [c.strip().split("=", 1) for c in headers.get("cookie", "").split(";") if "=" in c]
        offered += [v for k, v in cookies if k == COOKIE]
        offered += urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        if any(o and hmac.compare_digest(o.encode(), self.token.encode()) for o in offered):
            return None
        if scope["path"] == "/" and scope["method"] == "GET":
            return HTMLResponse("<h1>edgeface</h1><p>Open this page with <code>?token=...</code> (the contents of "
                                "the service's --token-file).</p>", status_code=401)
        return error(401, "missing or wrong token: send 'Authorization: Bearer TOKEN' (the --token-file contents)")


def host_name(header: str) -> str:
    """The name in a Host header, without its port: ``localhost:8080`` -> ``localhost``, ``[::1]:80`` -> ``[::1]``."""
    if header.startswith("["):
        return header.split("]")[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def failure(exc: EdgefaceError) -> JSONResponse:
    """A refused request: 503 when busy, 404 for a person who is not there, else 400; always one line."""
    message = str(exc)
    if isinstance(exc, Busy):
        return error(503, message)
    return error(404 if message.startswith("no person named") else 400, message)


UPLOAD_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}


async def uploads(request: Request, limit: int = MAX_FILES) -> list[tuple[str, bytes]]:
    """The uploaded images of a request: every file part of a multipart form, or the raw body as one image."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        form = await request.form(max_files=limit, max_fields=limit)
        files = [(v.filename or k, await v.read()) for k, v in form.multi_items() if hasattr(v, "read")]
    else:
        body = await request.body()
        files = [("upload", body)] if body else []
    if not files:
        raise EdgefaceError("no image in the request: send it as the body or as multipart file fields")
    return files


class Rename(BaseModel):
    name: str


def create_app(service: Service, token: str | None = None) -> FastAPI:
    """The FastAPI application for a running ``Service``."""
    app = FastAPI(title="edgeface", version="1", description="Face recognition on the device: recognise, verify, "
                  "enrol and watch. Images go as the raw request body or as multipart file fields.")

    async def work(fn: Any, *args: Any) -> Any:
        return await asyncio.wrap_future(service.submit(fn, *args))

    @app.exception_handler(EdgefaceError)
    async def refused(_request: Request, exc: EdgefaceError) -> JSONResponse:
        return failure(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return error(400, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(TooSlow)
    async def too_slow(_request: Request, _exc: TooSlow) -> JSONResponse:
        return error(408, f"the request body did not arrive within {BODY_SECONDS:.0f} s")

    @app.exception_handler(TooLarge)
    async def too_large(_request: Request, _exc: TooLarge) -> JSONResponse:  # a body without Content-Length
        return error(413, f"request body over the {service.config.max_upload_bytes:,}-byte limit")

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(resources.files("edgeface.serve").joinpath("page.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-store"})

    @app.post("/api/recognize", openapi_extra=UPLOAD_DOC, summary="Every face in an image, named or not")
    async def recognize(request: Request) -> dict:
        (label, data), *_ = await uploads(request, 1)
        return await work(service.recognize, data, label)

    @app.post("/api/verify", openapi_extra=UPLOAD_DOC, summary="Are the main faces of two images the same person?")
    async def verify(request: Request) -> dict:
        files = await uploads(request, 2)
        if len(files) != 2:
            raise EdgefaceError(f"verify takes exactly two images, got {len(files)}")
        return await work(service.verify, files[0][1], files[1][1])

    @app.get("/api/people", summary="Enrolled people")
    async def people() -> list[dict]:
        return await work(service.people)

    @app.post("/api/people/{name}/faces", openapi_extra=UPLOAD_DOC,
              summary="Enrol uploaded photos (each quality-checked; the reason for each refusal)")
    async def enroll(name: str, request: Request) -> JSONResponse:
        result = await work(service.enroll, name, await uploads(request))
        return JSONResponse(result, status_code=200 if result.pop("enrolled") else 422)

    @app.post("/api/people/{name}/capture", summary="Enrol the face now in the live view")
    async def capture(name: str) -> JSONResponse:
        result = await work(service.enroll_live, name)
        return JSONResponse(result, status_code=200 if result.pop("enrolled") else 422)

    @app.get("/api/people/{name}/face.jpg", summary="The first enrolled face of a person (a thumbnail)")
    async def face(name: str) -> Response:
        data = await work(service.face_jpeg, name)
        if data is None:
            return error(404, f"no kept face for {name!r}")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.delete("/api/people/{name}", summary="Remove a person and every template")
    async def remove(name: str) -> dict:
        await work(service.remove, name)
        return {"removed": name}

    @app.patch("/api/people/{name}", summary="Rename a person")
    async def rename(name: str, body: Rename) -> dict:
        await work(service.rename, name, body.name)
        return {"renamed": name, "to": body.name.strip()}

    @app.get("/api/events", summary="Recent arrived/left events, newest first; page with ?before=next")
    def events(limit: int = 50, before: int | None = None) -> dict:
        if not 1 <= limit <= 1000:
            raise EdgefaceError(f"limit must be 1 to 1000, got {limit}")
        return service.events.page(limit, before)

    @app.get("/api/events/stream", summary="Live events (server-sent events)")
    async def event_stream(request: Request, after: int | None = None) -> StreamingResponse:
        async def stream():
            last = service.events.last_id if after is None else after
            quiet = 0.0
            while not service.stop.is_set() and not await request.is_disconnected():
                fresh = service.events.after(last)
                for event in fresh:
                    yield f"id: {event['id']}\ndata: {json.dumps(event)}\n\n"
                    last = event["id"]
                quiet = 0.0 if fresh else quiet + 0.25
                if quiet >= 15:  # a comment keeps proxies from closing an idle stream
                    yield ": keep-alive\n\n"
                    quiet = 0.0
                await asyncio.sleep(0.25)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.get("/api/stream.mjpeg", summary="The annotated live view (MJPEG)")
    async def mjpeg(request: Request) -> StreamingResponse:
        live = service.live

        async def stream():
            live.viewers += 1
            try:
                shown = 0
                while not service.stop.is_set() and not await request.is_disconnected():
                    if live.index == shown:
                        await asyncio.sleep(0.02)
                        continue
                    frame = await asyncio.to_thread(live.jpeg)  # encoded once per frame, off the event loop
                    if frame is None:
                        await asyncio.sleep(0.1)
                        continue
                    shown, data = frame
                    yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(data)).encode()
                           + b"\r\n\r\n" + data + b"\r\n")
                    await asyncio.sleep(live.min_interval)  # at most --stream-fps a viewer
            finally:
                live.viewers -= 1

        return StreamingResponse(stream(), media_type="multipart/x-mixed-replace; boundary=frame",
                                 headers={"Cache-Control": "no-store"})

    @app.get("/api/health", summary="Model, gallery, camera state and FPS")
    async def health() -> dict:
        return await work(service.health)

    return app


def guarded_app(service: Service, token: str | None) -> Guard:
    """The application behind its guards, as uvicorn (or any ASGI server) runs it."""
    return Guard(create_app(service, token), service.config.max_upload_bytes, token)
