"""A Keras model as an embedder, so training, compression and eval all score models the same way."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edgeface.files import sha256_file
from edgeface.manifest import InputSpec, load_manifest
from edgeface.training.tf_setup import keras
from edgeface.vision.align import chip_key
from edgeface.vision.chip import chip_for
from edgeface.vision.embed import AlignedEmbedder, preprocess


class KerasEmbedder(AlignedEmbedder):
    """Embeds with a tf_keras model (a file, or a model object during training)."""

    def __init__(self, model: str | Path | keras.Model, flip: bool = False, mean: float | None = None,
                 scale: float | None = None, channels: str | None = None, name: str | None = None,
                 spec: InputSpec | None = None, alignment: str | None = None) -> None:
        """``spec`` and ``alignment``: a model object's normalisation and chip (a file's come from its manifest)."""
        from edgeface.training.models.registry import INPUT_SPEC
        from edgeface.training.train.keras_io import load_keras

        manifest = None
        if isinstance(model, (str, Path)):
            path = Path(model)
            self.model = load_keras(path)
            manifest = load_manifest(path)
            identity = sha256_file(path) if path.is_file() else str(path.resolve())
            self.name = path.name
        else:
            self.model = model
            identity = ""  # a model still training has no stable identity: nothing may be cached for it
            self.name = name or model.name
        base = manifest.input if manifest else spec or INPUT_SPEC
        size = int(self.model.inputs[0].shape[1])
        self.spec = InputSpec(size=size, channels=channels or base.channels,
                              mean=base.mean if mean is None else mean, scale=base.scale if scale is None else scale)
        self.size = int(self.model.outputs[0].shape[-1])
        self.flip = flip
        self.threshold = manifest.threshold if manifest else None
        self.alignment = chip_for(manifest.alignment if manifest else alignment).alignment
        settings = f"keras|{identity}|{self.spec}|flip={flip}" + chip_key(self.alignment)
        self.key = hashlib.sha256(settings.encode()).hexdigest()[:24] if identity else ""

    def forward(self, aligned: np.ndarray) -> np.ndarray:
        return self.model(preprocess(aligned, self.spec), training=False).numpy()


def embed_in_batches(model: keras.Model, faces: np.ndarray, spec: InputSpec, batch: int = 128) -> np.ndarray:
    """Unit embeddings of many aligned faces, ``batch`` at a time: one call on thousands of faces would hold every
    layer's activations for all of them at once."""
    out = np.concatenate([model(preprocess(faces[i : i + batch], spec), training=False).numpy()
                          for i in range(0, len(faces), batch)])
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def is_keras_model(model: str | Path) -> bool:
    path = Path(model)
    return path.suffix in (".keras", ".h5") or (path.is_dir() and (path / "saved_model.pb").exists())


def load_any_embedder(model: str | Path | None, threads: int = 1, flip: bool = False, mean: float | None = None,
                      scale: float | None = None, channels: str | None = None):
    """The training half's loader: a Keras model (.keras, .h5, SavedModel) too, besides what the device loads."""
    from edgeface.vision.embed import DLIB_PORT, load_embedder

    if str(model) == DLIB_PORT:
        from edgeface.training.train.dlib_port import ensure_dlib_port

        ensure_dlib_port()
    if model is not None and str(model) != "dlib" and is_keras_model(model):
        return KerasEmbedder(model, flip=flip, mean=mean, scale=scale, channels=channels)
    return load_embedder(model, threads=threads, flip=flip, mean=mean, scale=scale, channels=channels)
