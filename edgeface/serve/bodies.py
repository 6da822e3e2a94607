"""Request bodies as ``edgeface serve``'s routes (its own, DeepStack's and CompreFace's) take images from them."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData, UploadFile

from edgeface.errors import EdgefaceError, NotFound
from edgeface.serve.service import Busy

MAX_FILES = 20  # photos in one enrolment request
Work = Callable[..., Any]  # runs a call on the service's worker thread and awaits it (``worker``)


def worker(submit: Callable[..., concurrent.futures.Future]) -> Work:
    """``await work(fn, *args)``: ``fn`` on the request worker (``Service.submit``), awaited without blocking."""

    async def work(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.wrap_future(submit(fn, *args))

    return work


UPLOAD_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}


async def uploads(request: Request, limit: int = MAX_FILES) -> list[tuple[str, bytes]]:
    """The uploaded images of a request: every file part of a multipart form, or the raw body as one image."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        files = await form_files(await request.form(max_files=limit, max_fields=limit))
    else:
        body = await request.body()
        files = [("upload", body)] if body else []
    if not files:
        raise EdgefaceError("no image in the request: send it as the body or as multipart file fields")
    return files


async def form_files(form: FormData) -> list[tuple[str, bytes]]:
    """Every file part of a parsed multipart form, as (its file name, else its field name; its bytes)."""
    return [(v.filename or k, await v.read()) for k, v in form.multi_items() if isinstance(v, UploadFile)]


def status_of(exc: EdgefaceError) -> int:
    """The HTTP status of a refused request: 503 when the worker is busy, 404 when what was asked for is not
    there, else 400."""
    return 503 if isinstance(exc, Busy) else 404 if isinstance(exc, NotFound) else 400


def bounded(value: object, name: str, low: float, high: float, default: float) -> float:
    """A number a client sent as a form field or query parameter, within ``low``..``high``; ``default`` when
    absent; else one line naming the field."""
    text = "" if value is None else str(value).strip()
    if not text:
        return default
    try:
        number = float(text)
    except ValueError:
        raise EdgefaceError(f"{name} must be a number, got {text[:40]!r}") from None
    if not low <= number <= high:  # NaN fails too
        raise EdgefaceError(f"{name} must be {low:g} to {high:g}, got {text[:40]}")
    return number
