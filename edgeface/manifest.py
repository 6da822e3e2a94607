"""The manifest: what a .tflite needs to be used correctly, stored beside it as ``<stem>.json``.

It carries the input spec and normalisation (so nobody retypes ``--input-mean``), the verification threshold
measured on LFW, size/cost figures and the provenance chain. A model is identified by the sha256 of its file;
a manifest whose sha256 does not match its model is stale and is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeface import __version__
from edgeface.errors import EdgefaceError
from edgeface.files import read_json, sha256_file, write_json

FORMAT = "edgeface-manifest/1"


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
        if self.scale == 0:
            raise EdgefaceError("input scale must not be 0")


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
    edgeface_version: str = __version__
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> Manifest:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise EdgefaceError(f"{source} is not an edgeface manifest (format {FORMAT!r} expected)")
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        try:
            values["input"] = InputSpec(**values.get("input", {}))
            return cls(**values)
        except TypeError as exc:
            raise EdgefaceError(f"{source} has an invalid field: {exc}") from None


def manifest_path(model_path: str | Path) -> Path:
    """``out.tflite`` -> ``out.json``; any other model file keeps its suffix (``model.keras`` -> ``model.keras.json``)
    so a Keras model and its exported .tflite can share a folder and a stem."""
    path = Path(model_path)
    return path.with_suffix(".json") if path.suffix == ".tflite" else path.with_name(path.name + ".json")


def load_manifest(model_path: str | Path, check_sha: bool = True) -> Manifest | None:
    """The manifest beside a model file, or None when there is none; refuse a stale one."""
    path = manifest_path(model_path)
    if not path.exists():
        return None
    manifest = Manifest.from_dict(read_json(path), str(path))
    if check_sha and manifest.sha256 and manifest.sha256 != sha256_file(model_path):
        raise EdgefaceError(f"{path} describes another file (sha256 mismatch): re-export the model or delete it")
    return manifest


def save_manifest(model_path: str | Path, manifest: Manifest) -> Path:
    """Fill in the file identity and write ``<stem>.json`` atomically."""
    model_path = Path(model_path)
    manifest.sha256 = sha256_file(model_path)
    manifest.size_bytes = model_path.stat().st_size
    path = manifest_path(model_path)
    write_json(path, manifest.to_dict())
    return path
