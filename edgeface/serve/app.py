"""The HTTP face of ``edgeface serve``: a REST API (OpenAPI at /docs), live streams and the web page, and the two
REST dialects NVR clients already speak (``deepstack``, ``compreface``).

Routes only parse and answer; the work is ``Service``'s. Every request passes the guards first (``guard.Guard``).
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgeface.errors import EdgefaceError
from edgeface.serve.bodies import UPLOAD_DOC, status_of, uploads, worker
from edgeface.serve.compreface import compreface_routes
from edgeface.serve.deepstack import deepstack_routes
from edgeface.serve.guard import BODY_SECONDS, Guard, TooLarge, TooSlow, error
from edgeface.serve.service import Service


def failure(exc: EdgefaceError) -> JSONResponse:
    """A refused request, one line, with its status (``bodies.status_of``)."""
    return error(status_of(exc), str(exc))


class Rename(BaseModel):
    name: str


def create_app(service: Service, token: str | None = None) -> FastAPI:
    """The FastAPI application for a running ``Service``."""
    app = FastAPI(title="edgeface", version="1", description="Face recognition on the device: recognise, verify, "
                  "enrol and watch. Images go as the raw request body or as multipart file fields.")

    work = worker(service.submit)

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

    # {name:path}: a name with '/' reaches the route and is refused with the CLI's words, not "Not Found"
    @app.post("/api/people/{name:path}/faces", openapi_extra=UPLOAD_DOC,
              summary="Enrol uploaded photos (each quality-checked; a face that is already somebody else is refused "
                      "unless new_person=true; the reason for each refusal)")
    async def enroll(name: str, request: Request, new_person: bool = False) -> JSONResponse:
        result = await work(service.enroll, name, await uploads(request), new_person)
        return JSONResponse(result, status_code=200 if result.pop("enrolled") else 422)

    @app.post("/api/capture", summary="Hold the live view's frame and show what enrolling it would do (its face, "
                                      "the closest enrolled person): nothing is enrolled")
    async def capture_preview() -> dict:
        return await work(service.capture)

    @app.post("/api/people/{name:path}/capture",
              summary="Enrol a held capture (?capture=ID from POST /api/capture), else the face now in the live view")
    async def capture(name: str, capture: str | None = None, new_person: bool = False) -> JSONResponse:
        result = await work(service.enroll_live, name, capture, new_person)
        return JSONResponse(result, status_code=200 if result.pop("enrolled") else 422)

    @app.get("/api/people/{name:path}/face.jpg", summary="The first enrolled face of a person (a thumbnail)")
    async def face(name: str) -> Response:
        data = await work(service.face_jpeg, name)
        if data is None:
            return error(404, f"no kept face for {name!r}")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.delete("/api/people/{name:path}", summary="Remove a person and every template")
    async def remove(name: str) -> dict:
        await work(service.remove, name)
        return {"removed": name}

    @app.patch("/api/people/{name:path}", summary="Rename a person")
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

    app.include_router(deepstack_routes(service, work, token))
    app.include_router(compreface_routes(service, work))
    return app


def guarded_app(service: Service, token: str | None) -> Guard:
    """The application behind its guards, as uvicorn (or any ASGI server) runs it."""
    return Guard(create_app(service, token), service.config.max_upload_bytes, token)
