"""Keras model files in and out: load what a user brings (.keras, .h5, SavedModel), save ours with a manifest."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from edgeface.errors import EdgefaceError
from edgeface.manifest import Manifest, save_manifest
from edgeface.training.tf_setup import keras


def load_keras(path: str | Path, compile: bool = False, custom_objects: dict | None = None) -> keras.Model:
    """Load a Keras model with a one-line error. ``custom_objects`` names what a checkpoint refers to but Keras
    cannot rebuild by itself: a resumed run's loss functions, which are closures over the run's settings."""
    path = Path(path)
    if not path.exists():
        raise EdgefaceError(f"model not found: {path}")
    try:
        return keras.models.load_model(path, compile=compile, custom_objects=custom_objects)
    except Exception as exc:  # Keras raises many types for bad files; the user needs one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise EdgefaceError(f"cannot load Keras model {path}: {first}") from None


def save_keras(model: keras.Model, path: str | Path, manifest: Manifest | None = None) -> Path:
    """Save atomically (temp file in the same folder, then rename) and write the manifest beside it."""
    path = Path(path)
    if path.suffix not in (".keras", ".h5"):
        raise EdgefaceError(f"Keras models are saved as .keras or .h5, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        if getattr(model, "optimizer", None) is not None:  # a finished model: optimiser state triples the file
            plain = keras.models.clone_model(model)
            plain.set_weights(model.get_weights())
            model = plain
        model.save(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise EdgefaceError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    if manifest is not None:
        save_manifest(path, manifest)
    return path

