"""CompreFace's recognition API on ``edgeface serve``: what Double Take's CompreFace detector and the CompreFace SDKs
call, with the service's token as the ``x-api-key`` header.

* ``POST /api/v1/recognition/recognize`` (``file`` as multipart, or JSON ``{"file": base64}``; ``limit``,
  ``det_prob_threshold``, ``prediction_count``) -> ``result``: per face a ``box`` (with the detector's
  ``probability``) and ``subjects``, the closest enrolled people with a ``similarity`` on the clients' scale
  (``recognize.confidence``: the model's threshold is 0.60), best first, as CompreFace returns them whether they
  pass or not: the client decides with its own threshold. No face: 400 with code 28, as CompreFace.
* faces (an enrolled template is an ``image_id``): ``POST /faces?subject=`` adds one, ``GET /faces`` lists them
  (paged), ``DELETE /faces?subject=`` deletes a subject's, ``DELETE /faces/{image_id}`` one, ``POST /faces/delete``
  several;
* subjects: ``GET``, ``POST {"subject"}``, ``PUT /subjects/{subject} {"subject": new}`` (a rename), ``DELETE
  /subjects/{subject}``, ``DELETE /subjects``.

The same pipeline, gallery, worker and enrolment rule as the rest of ``serve`` (``new_person=true`` overrides the
look-alike refusal). Errors are CompreFace's shape, ``{"message", "code"}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from edgeface.errors import EdgefaceError
from edgeface.recognize.confidence import confidence
from edgeface.serve.bodies import Work, bounded, status_of, uploads
from edgeface.serve.service import Service

NO_FACE_CODE = 28  # CompreFace's "No face is found in the given image", which its clients test for
PAGE_MAX = 1000


class Refused(Exception):
    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code or status


def refusal(exc: Exception) -> JSONResponse:
    """A refusal in CompreFace's shape, with serve's status (``bodies.status_of``) and CompreFace's code for a
    photo without a face."""
    if isinstance(exc, Refused):
        status, code = exc.status, exc.code
    else:
        status = status_of(exc)
        code = NO_FACE_CODE if "no face found" in str(exc) else status
    return JSONResponse({"message": str(exc), "code": code}, status_code=status)


async def image(request: Request) -> tuple[str, bytes]:
    """The one image of a request: CompreFace's multipart ``file``, or JSON ``{"file": base64}``."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = base64.b64decode(str((await request.json()).get("file", "")), validate=True)
        except (ValueError, binascii.Error, AttributeError):
            raise EdgefaceError("file must be an image in base64") from None
        if not data:
            raise EdgefaceError("no image in the request: send it as multipart 'file' or JSON {'file': base64}")
        return "file", data
    return (await uploads(request, 1))[0]


def compreface_routes(service: Service, work: Work) -> APIRouter:
    """The CompreFace recognition routes over ``service`` (``work`` runs a call on its worker)."""
    router = APIRouter(prefix="/api/v1/recognition", tags=["CompreFace"])

    async def answer(request: Request, run: Any, status: int = 200) -> JSONResponse:
        try:
            return JSONResponse(await run(), status_code=status)
        except (EdgefaceError, Refused) as exc:
            return refusal(exc)

    def subject_of(request: Request, required: bool = True) -> str | None:
        subject = (request.query_params.get("subject") or "").strip()
        if required and not subject:
            raise EdgefaceError("subject is required")
        return subject or None

    @router.post("/recognize", summary="Every face with its closest subjects (similarity on the clients' scale)")
    async def recognize(request: Request) -> JSONResponse:
        async def run() -> dict:
            started = time.perf_counter()
            q = request.query_params
            limit = int(bounded(q.get("limit"), "limit", 0, 1000, 0))
            least = bounded(q.get("det_prob_threshold"), "det_prob_threshold", 0, 1, 0)
            count = int(bounded(q.get("prediction_count"), "prediction_count", 1, 100, 1))
            label, data = await image(request)
            rgb, faces = await work(service.identify, data, label)
            faces = [f for f in faces if f.detection >= least]
            if not faces:
                raise Refused(400, "No face is found in the given image", NO_FACE_CODE)
            faces.sort(key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), reverse=True)
            threshold = await work(lambda: service.threshold)
            result = []
            for face in faces[:limit or None]:
                x0, y0, x1, y1 = (round(v) for v in face.box)
                ranked = await work(service.ranked, rgb, face, count)
                result.append({"box": {"probability": round(face.detection, 5), "x_min": x0, "y_min": y0,
                                       "x_max": x1, "y_max": y1},
                               "subjects": [{"subject": name, "similarity": confidence(score, threshold)}
                                            for name, score in ranked],
                               "execution_time": {"detector": round((time.perf_counter() - started) * 1000)}})
            return {"result": result}

        return await answer(request, run)

    @router.post("/faces", summary="Add a face to a subject (created if new)", status_code=201)
    async def add_face(request: Request) -> JSONResponse:
        async def run() -> dict:
            subject = subject_of(request)
            new_person = request.query_params.get("new_person", "").lower() == "true"
            result = await work(service.enroll, subject, [await image(request)], new_person)
            if not result.pop("enrolled"):
                raise EdgefaceError("; ".join(result["rejected"].values()) or "nothing enrolled")
            ids = await work(lambda: service.gallery().template_ids(result["name"]))
            return {"image_id": str(ids[-1][0]), "subject": result["name"]}

        return await answer(request, run, 201)

    @router.get("/faces", summary="Enrolled faces (image ids), paged")
    async def faces(request: Request) -> JSONResponse:
        async def run() -> dict:
            q = request.query_params
            page = int(bounded(q.get("page"), "page", 0, 1e9, 0))
            size = int(bounded(q.get("size"), "size", 1, PAGE_MAX, 20))
            rows = await work(lambda: service.gallery().template_ids(subject_of(request, required=False)))
            chosen = rows[page * size:(page + 1) * size]
            return {"faces": [{"image_id": str(i), "subject": name} for i, name in chosen], "page_number": page,
                    "page_size": size, "total_pages": -(-len(rows) // size), "total_elements": len(rows)}

        return await answer(request, run)

    @router.delete("/faces", summary="Delete every face of a subject (the subject stays)")
    async def delete_faces(request: Request) -> JSONResponse:
        async def run() -> dict:
            subject = subject_of(request)
            return {"deleted": await work(lambda: service.gallery().clear_person(subject))}

        return await answer(request, run)

    def face_id(text: str) -> int:
        if not text.isdigit():
            raise Refused(404, f"no enrolled face with id {text[:40]!r}")
        return int(text)

    @router.delete("/faces/{image_id}", summary="Delete one face")
    async def delete_face(image_id: str, request: Request) -> JSONResponse:
        async def run() -> dict:
            subject = await work(lambda: service.gallery().remove_template(face_id(image_id)))
            return {"image_id": image_id, "subject": subject}

        return await answer(request, run)

    @router.post("/faces/delete", summary="Delete several faces by id")
    async def delete_many(request: Request) -> JSONResponse:
        async def run() -> list[dict]:
            try:
                ids = json.loads(await request.body())
            except ValueError:
                raise EdgefaceError("send a JSON list of image ids") from None
            if not isinstance(ids, list) or len(ids) > PAGE_MAX:
                raise EdgefaceError(f"send a JSON list of at most {PAGE_MAX} image ids")
            done = []
            for text in ids:
                try:
                    subject = await work(lambda t=str(text): service.gallery().remove_template(face_id(t)))
                except (EdgefaceError, Refused):
                    continue  # CompreFace deletes what it has and leaves the rest out of the answer
                done.append({"image_id": str(text), "subject": subject})
            return done

        return await answer(request, run)

    @router.get("/subjects", summary="Every subject")
    async def subjects(request: Request) -> JSONResponse:
        async def run() -> dict:
            return {"subjects": [p["name"] for p in await work(service.people)]}

        return await answer(request, run)

    async def subject_body(request: Request) -> str:
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not str(body.get("subject") or "").strip():
            raise EdgefaceError('send JSON {"subject": "name"}')
        return str(body["subject"]).strip()

    @router.post("/subjects", summary="Add a subject with no face yet", status_code=201)
    async def add_subject(request: Request) -> JSONResponse:
        async def run() -> dict:
            name = await subject_body(request)
            if not await work(lambda: service.gallery().add_person(name)):
                raise Refused(400, f"subject {name!r} already exists")
            return {"subject": name}

        return await answer(request, run, 201)

    @router.put("/subjects/{subject:path}", summary="Rename a subject")
    async def rename(subject: str, request: Request) -> JSONResponse:
        async def run() -> dict:
            await work(service.rename, subject, await subject_body(request))
            return {"updated": True}

        return await answer(request, run)

    @router.delete("/subjects/{subject:path}", summary="Delete a subject and every face of theirs")
    async def delete_subject(subject: str, request: Request) -> JSONResponse:
        async def run() -> dict:
            await work(service.remove, subject)
            return {"subject": subject}

        return await answer(request, run)

    @router.delete("/subjects", summary="Delete every subject")
    async def delete_subjects(request: Request) -> JSONResponse:
        async def run() -> dict:
            people = [p["name"] for p in await work(service.people)]
            for name in people:
                await work(service.remove, name)
            return {"deleted": len(people)}

        return await answer(request, run)

    return router
