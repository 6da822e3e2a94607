"""Shared plumbing of the compression commands: load a user's Keras model with its manifest, build the
fine-tuning face set, save the result with the compression step appended to the manifest's chain."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgeface.errors import EdgefaceError
from edgeface.manifest import Manifest, load_manifest
from edgeface.training.compress.finetune import FaceSet
from edgeface.training.models.registry import INPUT_SPEC, count_flops
from edgeface.training.tf_setup import keras
from edgeface.training.train.keras_io import load_keras, save_keras


def load_model(path: str | Path) -> tuple[keras.Model, Manifest]:
    model = load_keras(path)
    manifest = load_manifest(path) or Manifest(input=INPUT_SPEC, embedding_size=int(model.outputs[0].shape[-1]))
    return model, manifest


def face_set(model: keras.Model, manifest: Manifest, data: Sequence[Path] | None, limit: int) -> FaceSet | None:
    if not data:
        return None
    return FaceSet(data, model, limit=limit, spec=manifest.input)


def require_faces(faces: FaceSet | None, what: str) -> FaceSet:
    if faces is None:
        raise EdgefaceError(f"{what} needs --data DIR (prepared faces) to fine-tune on")
    return faces


def save_compressed(model: keras.Model, out: str | Path, manifest: Manifest, step: dict) -> dict:
    before = {"params": manifest.params, "flops": manifest.flops}
    result = Manifest(input=manifest.input, embedding_size=int(model.outputs[0].shape[-1]),
                      params=int(model.count_params()), flops=count_flops(model), architecture=manifest.architecture,
                      alignment=manifest.alignment, chain=[*manifest.chain, step])
    save_keras(model, out, result)
    return {"model": str(out), "params_before": before["params"], "params_after": result.params,
            "flops_before": before["flops"], "flops_after": result.flops, "step": step}
