"""DeepStack's face API (also CodeProject.AI Server's), on ``edgeface serve``: what Home Assistant's DeepStack face
integration (through ``deepstack-python``), Blue Iris, Agent DVR, Node-RED's DeepStack nodes and Double Take send.

Routes (all ``POST``, multipart form: the image as ``image``, fields as form fields):

* ``/v1/vision/face/register``: ``userid`` and one or more images -> ``{"success": true, "message": "face added"}``;
* ``/v1/vision/face/recognize``: ``image`` [, ``min_confidence``] -> ``predictions``: ``userid`` (``unknown`` for
  nobody enrolled), ``confidence`` (``recognize.confidence``: the model's threshold is 0.60) and
  ``x_min``/``y_min``/``x_max``/``y_max``;
* ``/v1/vision/face``: detection only (``confidence`` is the detector's);
* ``/v1/vision/face/list``: ``faces``, the enrolled names; ``/v1/vision/face/delete``: ``userid``.

They run on the same pipeline, gallery and worker as the rest of ``serve``, and enrolment follows its one rule (a face
that already matches someone else is refused, naming them; the form field ``new_person=true`` overrides). A refused
face answers 200 with ``success: false`` and the reason in ``error`` (what ``deepstack-python`` shows the user); a
malformed request 400, a wrong key 401, both in the same shape. The key is the service's token, given as DeepStack's
``api_key`` form field or as a header.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData

from edgeface.errors import EdgefaceError
from edgeface.recognize.confidence import confidence
from edgeface.recognize.results import FaceRecord
from edgeface.serve.bodies import MAX_FILES, Work, bounded, form_files
from edgeface.serve.guard import holds_token
from edgeface.serve.service import Busy, Service


def answer(started: float, status: int = 200, **body: Any) -> JSONResponse:
    """A DeepStack reply: ``success``, the body, and ``duration`` in milliseconds, as its clients read it."""
    body.setdefault("success", status == 200 and "error" not in body)
    if not body["success"]:
        body.setdefault("code", status)
    return JSONResponse({**body, "duration": round((time.perf_counter() - started) * 1000)}, status_code=status)


def box(record: FaceRecord) -> dict[str, int]:
    x0, y0, x1, y1 = (round(v) for v in record.box)
    return {"x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1}


def field(form: FormData, name: str, what: str) -> str:
    """A required text field of the form, or one line saying what it is for."""
    text = str(form.get(name) or "").strip()
    if not text:
        raise EdgefaceError(f"{name} is required: {what}")
    return text


async def first_image(form: FormData) -> tuple[float, str, bytes]:
    """The request's ``min_confidence`` (0 to 1) and its first image with its name: what recognise and detect read."""
    least = bounded(form.get("min_confidence"), "min_confidence", 0.0, 1.0, 0.0)
    (label, data), *_ = await images(form)
    return least, label, data


async def images(form: FormData) -> list[tuple[str, bytes]]:
    files = await form_files(form)
    if not files:
        raise EdgefaceError("no image in the request: send it as the multipart file field 'image'")
    return files


def deepstack_routes(service: Service, work: Work, token: str | None) -> APIRouter:
    """The DeepStack face routes over ``service`` (``work`` runs a call on its worker)."""
    router = APIRouter(prefix="/v1/vision/face", tags=["DeepStack / CodeProject.AI"])

    async def handle(request: Request, run: Callable[[FormData, float], Awaitable[JSONResponse]]) -> JSONResponse:
        """Parse the form, check the key, run the route (given the form and when the request started) and answer
        every refusal in DeepStack's shape."""
        started = time.perf_counter()
        try:
            form = await request.form(max_files=MAX_FILES, max_fields=MAX_FILES + 8)
        except Exception:  # not a form: DeepStack's clients always send one
            return answer(started, 400, error="send a multipart form (image, userid, api_key), as DeepStack takes")
        if request.scope.get("state", {}).get("key_unchecked") and not holds_token(form.get("api_key"), token or ""):
            return answer(started, 401, error="missing or wrong api_key (the service's --token-file contents)")
        try:
            return await run(form, started)
        except Busy as exc:
            return answer(started, 503, error=str(exc))
        except EdgefaceError as exc:
            return answer(started, 400, error=str(exc))

    @router.post("/register", summary="Enrol one or more images as userid")
    async def register(request: Request) -> JSONResponse:
        async def run(form: FormData, started: float) -> JSONResponse:
            userid = field(form, "userid", "the name to enrol the face as")
            result = await work(service.enroll, userid, await images(form),
                                str(form.get("new_person", "")).lower() == "true")
            if not result.pop("enrolled"):
                reasons = "; ".join(f"{photo}: {why}" for photo, why in result["rejected"].items())
                return answer(started, error=f"nothing enrolled for {userid!r}: {reasons}", success=False, code=400)
            return answer(started, message="face added", userid=result["name"], templates=result["templates"])

        return await handle(request, run)

    @router.post("/recognize", summary="Name every face (userid 'unknown' for nobody enrolled)")
    async def recognize(request: Request) -> JSONResponse:
        async def run(form: FormData, started: float) -> JSONResponse:
            least, label, data = await first_image(form)
            _, faces = await work(service.identify, data, label)
            threshold = await work(lambda: service.threshold)
            predictions = []
            for face in faces:
                sure = confidence(face.score, threshold)
                named = face.name is not None and sure >= least
                predictions.append({"confidence": sure if named else 0.0,
                                    "userid": face.name if named else "unknown", **box(face)})
            return answer(started, predictions=predictions)

        return await handle(request, run)

    @router.post("", summary="Find faces (no recognition)")
    async def detect(request: Request) -> JSONResponse:
        async def run(form: FormData, started: float) -> JSONResponse:
            least, label, data = await first_image(form)
            faces = await work(service.detect, data, label)
            return answer(started, predictions=[{"confidence": round(f.detection, 4), **box(f)}
                                                for f in faces if f.detection >= least])

        return await handle(request, run)

    @router.post("/list", summary="The enrolled names")
    async def listed(request: Request) -> JSONResponse:
        async def run(_form: FormData, started: float) -> JSONResponse:
            people = await work(service.people)
            return answer(started, faces=[p["name"] for p in people if p["templates"]])

        return await handle(request, run)

    @router.post("/delete", summary="Remove userid and every enrolled face of theirs")
    async def delete(request: Request) -> JSONResponse:
        async def run(form: FormData, started: float) -> JSONResponse:
            await work(service.remove, field(form, "userid", "the name to remove"))
            return answer(started)

        return await handle(request, run)

    return router
