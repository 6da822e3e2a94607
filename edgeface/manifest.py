"""The manifest: what a .tflite needs to be used correctly, stored inside it (and copied beside it as ``<stem>.json``).

It carries the input spec and normalisation (so nobody retypes ``--input-mean``), the verification threshold
measured on LFW, size/cost figures and the provenance chain. Inside the file it is a TFLite metadata entry
(``edgeface.tflite_metadata``): the model and its manifest are one file, written in one atomic rename, and a
copied model keeps its normalisation. The ``.json`` beside it is a readable copy; the entry inside wins. A model is
identified by the sha256 of its file without that entry, so updating the manifest never changes the identity that
galleries and caches are bound to; a sidecar whose sha256 does not match its model is stale and is refused.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeface.alignments import ALIGNMENTS
from edgeface.choices import TEMPLATE_MODES
from edgeface.errors import EdgefaceError
from edgeface.files import atomic_write, portable, read_json, sha256_file, write_json
from edgeface.version import __version__

FORMAT = "edgeface-manifest/1"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_threshold(value: Any, what: str = "--threshold") -> float:
    """A cosine threshold: a finite number in (0, 1]. At 0 or below strangers are named (unrelated faces score
    around 0); above 1 no one ever matches, silently."""
    if not is_number(value) or not 0.0 < value <= 1.0:
        raise EdgefaceError(f"{what} must be a cosine similarity above 0 and at most 1, got {value!r}")
    return float(value)


# what any real normalisation of 0..255 pixels looks like: a mean inside the pixel range, and a scale that maps
# the 256 levels onto a span between 1/4 (scale 1/1024) and 1020 (scale 4): [-1, 1] (1/127.5), [0, 1] (1/255),
# dlib's 1/256 and raw pixels (1) all fit; 1e-6 (every face alike) or a negative scale (a photo negative) do not
MEAN_RANGE = (0.0, 255.0)
SCALE_RANGE = (1 / 1024, 4.0)
# a threshold placed at FAR 1e-3 sits above the 99.9th percentile of strangers' cosines, about 3.1 / sqrt(D) even
# for random D-dim embeddings: above 0.05 up to D = 4096; one below it was not calibrated (it would name strangers)
MANIFEST_THRESHOLD_MIN = 0.05


@dataclass
class InputSpec:
    """How pixels become model input: value = (pixel - mean) * scale, channels in ``channels`` order."""

    size: int = 112
    channels: str = "RGB"
    mean: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.channels not in ("RGB", "BGR"):
            raise EdgefaceError(f"channel order must be RGB or BGR, got {self.channels!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 8 <= self.size <= 4096:
            raise EdgefaceError(f"input size must be a whole number of pixels from 8 to 4096, got {self.size!r}")
        for name, (low, high) in (("mean", MEAN_RANGE), ("scale", SCALE_RANGE)):
            value = getattr(self, name)
            if not is_number(value) or not low <= value <= high:
                raise EdgefaceError(f"input {name} must be a number from {low:g} to {high:g} (pixels are 0..255), "
                                    f"got {value!r}")


@dataclass
class Manifest:
    input: InputSpec = field(default_factory=InputSpec)
    embedding_size: int = 0
    sha256: str = ""
    size_bytes: int = 0
    threshold: float | None = None
    threshold_far: float | None = None
    threshold_source: str | None = None
    params: int | None = None
    flops: int | None = None
    dtype: str = "float32"
    quantization: dict[str, Any] = field(default_factory=dict)
    chain: list[dict[str, Any]] = field(default_factory=list)
    architecture: str | None = None
    # the landmarks the training crops were aligned from (yunet-5pt or blazeface-4pt): recognize aligns the same way
    alignment: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    # per-model recognition gates calibrated on its own faces (``max_turn``); a missing one takes the library's default
    gates: dict[str, Any] = field(default_factory=dict)
    # how enrolled templates are made: "single" (one pass, like every probe) or "flip" (the face and its mirror
    # averaged; probes stay one pass): ``vision.embed.template_embedder``. The threshold is placed for that mix.
    templates: str = "single"
    edgeface_version: str = __version__
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        """As stored: the provenance chain with portable paths (``files.portable``), never the builder's."""
        data = asdict(self)
        data["chain"] = portable(data["chain"])
        data["threshold_source"] = portable(data["threshold_source"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> Manifest:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise EdgefaceError(f"{source} is not an edgeface manifest (format {FORMAT!r} expected)")
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        if not isinstance(values.get("input", {}), dict):
            raise EdgefaceError(f"{source}: 'input' must be an object")
        try:
            values["input"] = InputSpec(**values.get("input", {}))
            manifest = cls(**values)
        except TypeError as exc:
            raise EdgefaceError(f"{source} has an invalid field: {exc}") from None
        except EdgefaceError as exc:
            raise EdgefaceError(f"{source}: {exc}") from None
        manifest.check(source)
        return manifest

    def check(self, source: str) -> None:
        """Types and ranges of the fields a model is run with: a wrong one is an error, never a silent default."""
        if self.threshold is not None:
            check_threshold(self.threshold, f"{source}: threshold")
            if self.threshold < MANIFEST_THRESHOLD_MIN:
                raise EdgefaceError(f"{source}: threshold {self.threshold:g} is below {MANIFEST_THRESHOLD_MIN}, where "
                                    "no calibrated FAR 1e-3 threshold lies: the manifest is damaged or forged")
        if isinstance(self.embedding_size, bool) or not isinstance(self.embedding_size, int) \
                or not 0 <= self.embedding_size <= 65536:
            raise EdgefaceError(f"{source}: embedding_size must be a whole number, got {self.embedding_size!r}")
        for name in ("chain", "metrics", "quantization"):
            expected = list if name == "chain" else dict
            if not isinstance(getattr(self, name), expected):
                raise EdgefaceError(f"{source}: {name} must be a JSON {expected.__name__}")
        if self.templates not in TEMPLATE_MODES:
            raise EdgefaceError(f"{source}: templates must be one of {', '.join(TEMPLATE_MODES)}, got "
                                f"{self.templates!r}")
        if self.alignment is not None and self.alignment not in ALIGNMENTS:
            raise EdgefaceError(f"{source}: alignment must be one of {', '.join(ALIGNMENTS)}, got {self.alignment!r}")


def manifest_path(model_path: str | Path) -> Path:
    """``out.tflite`` -> ``out.json``; any other model file keeps its suffix (``model.keras`` -> ``model.keras.json``)
    so a Keras model and its exported .tflite can share a folder and a stem."""
    path = Path(model_path)
    return path.with_suffix(".json") if path.suffix == ".tflite" else path.with_name(path.name + ".json")


def is_tflite(path: Path) -> bool:
    return path.suffix == ".tflite"


def parse_manifest(data: Any, source: str) -> Manifest:
    try:
        return Manifest.from_dict(data, source)
    except RecursionError:
        raise EdgefaceError(f"{source} is nested too deeply to be a manifest") from None


def load_manifest(model_path: str | Path, check_sha: bool = True, content: bytes | None = None) -> Manifest | None:
    """The manifest inside a .tflite, else the one beside the model file, else None; refuse a stale sidecar.

    ``content``: the model's bytes when the caller has already read them."""
    path = Path(model_path)
    if is_tflite(path) and (content is not None or path.is_file()):
        from edgeface.tflite_metadata import check_tflite_file, read_manifest

        content = check_tflite_file(path) if content is None else content
        embedded = read_manifest(content)
        if embedded is not None:
            manifest = parse_manifest(embedded, f"the manifest inside {path.name}")
            if check_sha and manifest.sha256:  # copied into another model, it would feed that model wrongly
                from edgeface.tflite_metadata import model_identity

                if manifest.sha256 != model_identity(content):
                    raise EdgefaceError(f"the manifest inside {path.name} describes another model file (sha256 "
                                        "mismatch): it was copied from elsewhere; re-export or re-import the model")
            return manifest
    sidecar = manifest_path(path)
    if not sidecar.exists():
        return None
    manifest = parse_manifest(read_json(sidecar), str(sidecar))
    if check_sha and manifest.sha256:
        if content is not None:
            from edgeface.tflite_metadata import model_identity

            identity = model_identity(content)
        else:
            identity = sha256_file(path)
        if manifest.sha256 != identity:
            raise EdgefaceError(f"{sidecar} describes another file (sha256 mismatch): re-export the model or delete it")
    return manifest


def write_model(path: str | Path, content: bytes, manifest: Manifest | None = None) -> Path:
    """Write a model atomically; a .tflite gets ``manifest`` inside it (and a readable copy beside it).

    The model and its manifest are one file, renamed into place in one step: a kill at any moment leaves either the
    previous file or the new one, each with its own manifest, never a model without its manifest.
    """
    path = Path(path)
    if manifest is not None and is_tflite(path):
        from edgeface.tflite_metadata import bare_model, embed_manifest

        base = bare_model(content)  # what the identity of the written file hashes
        manifest.sha256 = hashlib.sha256(base).hexdigest()
        manifest.size_bytes = len(base)
        content = embed_manifest(base, manifest.to_dict())
    with atomic_write(path) as handle:
        handle.write(content)
    if manifest is not None:
        if not is_tflite(path):
            manifest.sha256 = sha256_file(path)
            manifest.size_bytes = path.stat().st_size
        write_json(manifest_path(path), manifest.to_dict())
    return path


def save_manifest(model_path: str | Path, manifest: Manifest) -> Path:
    """Store ``manifest`` for an existing model file (inside it for .tflite); returns the readable copy's path."""
    path = Path(model_path)
    if is_tflite(path):
        from edgeface.tflite_metadata import check_tflite_file

        write_model(path, check_tflite_file(path), manifest)
    else:
        manifest.sha256 = sha256_file(path)
        manifest.size_bytes = path.stat().st_size
        write_json(manifest_path(path), manifest.to_dict())
    return manifest_path(path)
