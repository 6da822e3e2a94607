"""The manifest inside the ``.tflite`` file: a named entry of the flatbuffer's ``metadata`` list.

Why inside: a ``.tflite`` copied without the ``.json`` beside it used to be normalised as mean 0 / scale 1 and
scored 58 % on LFW instead of 95.7 %, silently. TFLite's own ``metadata`` field (where MediaPipe keeps its model
cards and the converter its runtime version) travels with the file, and interpreters ignore entries they do not
know, so the model still runs everywhere.

Why the model keeps its identity: galleries and caches are bound to a model's sha256. Writing a new threshold into
the manifest must not orphan every gallery, so a model's identity is the sha256 of the file *without* the edgeface
entry: the manifest is appended as the last buffer and the last metadata entry, and taking it out again gives back
the converter's bytes exactly (flatbuffers packs deterministically; checked on every model the converter makes).
A file with no edgeface entry is its own identity, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.errors import EdgefaceError

TFLITE_MAGIC = b"TFL3"
MAX_MODEL_BYTES = 2**31  # the flatbuffer format's own limit

NAME = b"edgeface_manifest"
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few KB; anything larger is not ours


def schema() -> Any:
    """The TFLite flatbuffer schema (generated Python classes) of whichever runtime is installed."""
    try:
        from ai_edge_litert import schema_py_generated as generated
    except ImportError:
        try:
            from tflite_runtime import schema_py_generated as generated  # type: ignore[import-not-found]
        except ImportError:
            raise EdgefaceError("reading model metadata needs ai-edge-litert: pip install ai-edge-litert") from None
    return generated


def _root(data: bytes) -> Any:
    try:
        return schema().Model.GetRootAs(data, 0)
    except Exception as exc:  # a damaged flatbuffer raises anything from IndexError to struct.error
        raise EdgefaceError(f"damaged TFLite flatbuffer: {type(exc).__name__}") from None


def _entry(data: bytes) -> tuple[int, int] | None:
    """(metadata index, buffer index) of the edgeface entry, or None."""
    root = _root(data)
    try:
        for i in range(root.MetadataLength()):
            meta = root.Metadata(i)
            if meta.Name() == NAME:
                return i, int(meta.Buffer())
    except Exception as exc:
        raise EdgefaceError(f"damaged TFLite metadata: {type(exc).__name__}") from None
    return None


def read_manifest(data: bytes) -> dict | None:
    """The manifest dict stored in a .tflite's bytes, or None when there is none."""
    entry = _entry(data)
    if entry is None:
        return None
    root = _root(data)
    try:
        buffer = root.Buffers(entry[1])
        offset = buffer.Offset() or 0
        if offset > 1:  # stored after the flatbuffer (the LiteRT quantizer's layout)
            blob = data[offset : offset + buffer.Size()]
        else:
            raw = buffer.DataAsNumpy()
            blob = b"" if isinstance(raw, int) else raw.tobytes()
    except Exception as exc:
        raise EdgefaceError(f"damaged edgeface metadata: {type(exc).__name__}") from None
    if len(blob) > MAX_MANIFEST_BYTES:
        raise EdgefaceError(f"edgeface metadata is {len(blob)} bytes, more than a manifest can be")
    try:
        value = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EdgefaceError(f"the manifest inside the model is not valid JSON: {type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise EdgefaceError("the manifest inside the model is not a JSON object")
    return value


def pack(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def unpack(data: bytes) -> Any:
    """The object view; weights that a writer (the LiteRT quantizer) put after the flatbuffer, addressed by
    offset, are brought inside it, or re-packing would drop them."""
    try:
        model = schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:
        raise EdgefaceError(f"damaged TFLite flatbuffer: {type(exc).__name__}") from None
    for buf in model.buffers or []:
        if buf.offset and buf.offset > 1:
            if buf.offset + buf.size > len(data):
                raise EdgefaceError("damaged TFLite file: a weight buffer points past the end of the file")
            buf.data = np.frombuffer(data, np.uint8, buf.size, buf.offset).copy()
            buf.offset = buf.size = 0
    return model


def _has_outside_buffers(data: bytes) -> bool:
    root = _root(data)
    return any((root.Buffers(i).Offset() or 0) > 1 for i in range(root.BuffersLength()))


def strip_manifest(data: bytes) -> bytes:
    """The model's bytes without the edgeface entry: the converter's own bytes for a file edgeface wrote."""
    entry = _entry(data)
    if entry is None:
        return data
    model = unpack(data)
    meta_index, buffer_index = entry
    del model.metadata[meta_index]
    if buffer_index == len(model.buffers) - 1:
        del model.buffers[buffer_index]
    else:  # someone appended buffers after ours: leave the slot, empty, so no tensor index moves
        model.buffers[buffer_index].data = None
    if not model.metadata:
        model.metadata = None
    return pack(model)


def bare_model(data: bytes) -> bytes:
    """The model's bytes a manifest is embedded into, and its identity hashes: without the edgeface entry, every
    weight inside the flatbuffer (a file that keeps buffers after it, as the LiteRT quantizer writes, is repacked)."""
    base = strip_manifest(data)
    return pack(unpack(base)) if _has_outside_buffers(base) else base


def embed_manifest(data: bytes, manifest: dict[str, Any]) -> bytes:
    """``data`` with ``manifest`` as its edgeface entry (an earlier one is replaced)."""
    generated = schema()
    base = bare_model(data)
    model = unpack(base)
    blob = json.dumps(manifest, sort_keys=True).encode("utf-8")
    buffer = generated.BufferT()
    buffer.data = list(blob)
    model.buffers = [*(model.buffers or []), buffer]
    meta = generated.MetadataT()
    meta.name = NAME.decode()
    meta.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), meta]
    out = pack(model)
    if strip_manifest(out) != base:  # the identity promise: taking the entry out gives the model back
        raise EdgefaceError("could not embed the manifest without changing the model's bytes")
    return out


def model_identity(data: bytes) -> str:
    """sha256 of the model without its edgeface manifest: stable across threshold and manifest updates."""
    return hashlib.sha256(strip_manifest(data)).hexdigest()


def gallery_identity(model_sha: str, flip_templates: bool) -> str:
    """What a gallery is bound to for a model of identity ``model_sha``: that, or with flip-averaged templates a hash
    of it and that mode (one-pass templates of the same network are not comparable: ``gallery upgrade``)."""
    return hashlib.sha256(f"{model_sha}|templates=flip".encode()).hexdigest() if flip_templates else model_sha


def check_tflite_file(path: str | Path) -> bytes:
    """Read a model file and refuse anything that is not a TFLite flatbuffer, with a message naming the file."""
    path = Path(path)
    if not path.exists():
        raise EdgefaceError(f"model file not found: {path}")
    if path.is_dir():
        raise EdgefaceError(f"model path is a directory, expected a .tflite file: {path}")
    if not path.is_file():
        raise EdgefaceError(f"model path is not a regular file (a device or pipe?): {path}")
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise EdgefaceError(f"model file {path} is {size / 2**30:.1f} GiB, above the 2 GiB a .tflite can hold")
        data = path.read_bytes()
    except OSError as exc:
        raise EdgefaceError(f"cannot read model {path}: {exc.strerror}") from None
    if len(data) < 8 or data[4:8] != TFLITE_MAGIC:
        raise EdgefaceError(f"not a TFLite model (no TFL3 flatbuffer header): {path}")
    return data
