"""Quantization-aware training (TFMOT): fake-quantize weights and activations during a short distillation so
the int8 export loses less than post-training quantization. ``prune_preserve`` keeps an earlier pruning's zeros
(TFMOT's pruning-preserving scheme). Post-training modes live in ``edgeface.training.export`` (float16/dynamic/int8).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgeface.choices import QAT_MODES
from edgeface.errors import EdgefaceError
from edgeface.training.compress.finetune import FaceSet, finetune
from edgeface.training.compress.prune import check_supported
from edgeface.training.tf_setup import keras


def quantization_aware(model: keras.Model, faces: FaceSet, mode: str = "qat", epochs: float = 2.0, batch: int = 64,
                       lr: float = 2e-4) -> keras.Model:
    """A QAT-trained copy of ``model``; export it with ``--quantize int8`` to get the integer model."""
    import tensorflow_model_optimization as tfmot

    if mode not in QAT_MODES:
        raise EdgefaceError(f"unknown QAT mode {mode!r}; choose one of {', '.join(QAT_MODES)}")
    check_supported(model)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    try:
        annotated = tfmot.quantization.keras.quantize_annotate_model(clone)
        if mode == "qat-prune-preserve":
            from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
                default_8bit_prune_preserve_quantize_scheme as scheme,
            )

            qat = tfmot.quantization.keras.quantize_apply(
                annotated, scheme.Default8BitPrunePreserveQuantizeScheme())
        else:
            qat = tfmot.quantization.keras.quantize_apply(annotated)
    except (ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise EdgefaceError(f"TFMOT cannot quantize this model: {first}") from None
    finetune(qat, faces, epochs, batch, lr)
    return qat


def quantize_keras(model: Path, out: Path, mode: str, calib_data: Sequence[Path] = (), data: Sequence[Path] = (),
                   calib: int = 300, io: str = "int8", epochs: float = 2.0, faces: int = 4000) -> dict:
    """``edgeface quantize MODEL.keras``: post-training (``export``'s float16/dynamic/int8) or quantization-aware
    (fine-tuned on ``data``, then int8), straight to ``out`` with the quantize step in its manifest. Calibration
    faces come from ``calib_data``, else ``data``, else the QAT faces."""
    from edgeface.training.compress.io import face_set, load_model, require_faces
    from edgeface.training.export import calibration_faces, export

    keras_model, manifest = load_model(model)
    step: dict = {"step": "quantize", "mode": mode}
    calibration = calibration_faces(list(calib_data or data), calib) if (calib_data or data) else None
    if mode in QAT_MODES:
        faces_set = require_faces(face_set(keras_model, manifest, list(data), faces), mode)
        keras_model = quantization_aware(keras_model, faces_set, mode, epochs)
        step["epochs"] = epochs
        calibration = faces_set.faces[:calib] if calibration is None else calibration
    path, result = export(keras_model, out, "int8" if mode in QAT_MODES else mode, calibration, io, manifest, step)
    return {"model": str(path), "size_bytes": result.size_bytes, "mode": mode, "quantization": result.quantization}
