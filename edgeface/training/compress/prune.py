"""Pruning. Magnitude (unstructured, TFMOT): zeroes the smallest weights, which shrinks the gzipped file but
not the latency. Structured (channels): removes whole channels and rebuilds a genuinely thinner model, the only
pruning that cuts FLOPs and latency on CPUs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.training.compress.channels import channel_groups, kept_channels, remove_channels
from edgeface.training.compress.finetune import FaceSet, finetune
from edgeface.training.tf_setup import keras

PRUNABLE = (keras.layers.Conv2D, keras.layers.Dense)  # depthwise kernels are tiny and TFMOT leaves them dense
WEIGHTLESS_OK = (keras.layers.InputLayer, keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Add,
                 keras.layers.Flatten, keras.layers.Activation, keras.layers.MaxPooling2D, keras.layers.Dropout,
                 keras.layers.GlobalAveragePooling2D, keras.layers.DepthwiseConv2D, keras.layers.AveragePooling2D,
                 keras.layers.Reshape, keras.layers.ZeroPadding2D, keras.layers.Concatenate, keras.layers.Multiply)


def check_supported(model: keras.Model) -> None:
    """Refuse, naming the layer, any layer the compression code does not know how to handle."""
    if not isinstance(model, keras.Model) or not hasattr(model, "layers"):
        raise EdgefaceError("expected a tf_keras functional or sequential model")
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise EdgefaceError(f"layer {layer.name!r} is a nested model: flatten it before compressing")
        if not isinstance(layer, PRUNABLE + WEIGHTLESS_OK):
            raise EdgefaceError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be compressed by edgeface")


def sparsity_report(model: keras.Model) -> list[dict]:
    """Fraction of exactly-zero weights in every kernel."""
    rows = []
    for layer in model.layers:
        for w in layer.weights:
            if "kernel" in w.name:
                v = w.numpy()
                rows.append({"layer": layer.name, "weights": int(v.size), "sparsity": float(np.mean(v == 0))})
    return rows


def prunable(model: keras.Model, sparsity: float, steps: int) -> tuple[keras.Model, list]:
    """A copy of ``model`` whose Conv2D/Dense kernels TFMOT drives to ``sparsity`` over the first 70 % of
    ``steps`` training steps (PolynomialDecay), and the callback that advances it. Train it with any loss, then
    ``tfmot.sparsity.keras.strip_pruning``. The model passed in is not modified (it is cloned first)."""
    import tensorflow_model_optimization as tfmot

    if not 0 < sparsity < 1:
        raise EdgefaceError(f"--sparsity must be between 0 and 1, got {sparsity}")
    check_supported(model)
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=max(1, int(0.7 * steps)),
                                                   frequency=max(1, steps // 20))
    clone = keras.models.clone_model(model)  # prune_low_magnitude rewires what it is given: never the original
    clone.set_weights(model.get_weights())

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, PRUNABLE) and not isinstance(layer, keras.layers.DepthwiseConv2D):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    wrapped = keras.models.clone_model(clone, clone_function=wrap)  # wraps clone's layers: weights carry over
    return wrapped, [tfmot.sparsity.keras.UpdatePruningStep()]


def magnitude_step(sparsity: float, epochs: float) -> dict:
    """The manifest chain's record of a magnitude pruning."""
    return {"step": "prune", "structured": False, "sparsity": sparsity, "epochs": epochs}


def structured_step(ratio: float, flops: float | None, steps: int, relation_weight: float, epochs: float,
                    **extra: object) -> dict:
    """The manifest chain's record of a structured pruning: the FLOPs share when channels were allocated by
    sensitivity, else the uniform ratio; ``extra``: what a recipe adds (the step reached, faces, learning rate)."""
    share = {"flops": flops} if flops is not None else {"ratio": ratio}
    return {"step": "prune", "structured": True, **share, "steps": steps, "relation_weight": relation_weight,
            "epochs": epochs, **extra}


def magnitude_prune(model: keras.Model, sparsity: float, faces: FaceSet, epochs: float = 2.0,
                    batch: int = 64, lr: float = 5e-4) -> tuple[keras.Model, list[dict]]:
    """Low-magnitude pruning of Conv2D/Dense kernels to ``sparsity`` while distilling the original's
    embeddings (``finetune``), then ``strip_pruning``."""
    import tensorflow_model_optimization as tfmot

    steps = max(1, len(faces.faces) // min(batch, len(faces.faces))) * max(1, round(epochs))
    wrapped, callbacks = prunable(model, sparsity, steps)
    finetune(wrapped, faces, epochs, batch, lr, callbacks=callbacks)
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    return stripped, sparsity_report(stripped)


def structured_prune(model: keras.Model, ratio: float, faces: FaceSet | None, epochs: float = 2.0,
                     batch: int = 64, lr: float = 5e-4, steps: int = 1,
                     relation_weight: float = 0.0, on_step: Callable[[int, keras.Model], dict] | None = None,
                     flops: float | None = None) -> tuple[keras.Model, list[dict]]:
    """Remove ``ratio`` of the channels of every channel group (``channel_groups``), the least important first
    (``channels.channel_importance``), into a thinner model built from the edited config; with ``faces``, fine-tune
    by distilling the original model's embeddings (cosine, plus ``relation_weight`` x the relation loss).

    ``steps`` > 1 prunes gradually: each step removes an equal share (geometrically: the same fraction of what is
    left), re-ranks on the fine-tuned survivors and fine-tunes ``epochs / steps``. Why: channels that matter only
    once their neighbours are gone get the chance to show it, and each fine-tune repairs a smaller injury.
    The report has one row per group (``"group"``), then one per step (``"step"``: FLOPs, last fine-tuning loss and
    mean cosine to the original on the fine-tuning faces, and whatever ``on_step(step, model)`` returns, e.g. an
    LFW score of the exported step), the curve a gradual run is judged by.

    ``flops`` (instead of ``ratio``) removes that fraction of the model's FLOPs with per-group shares chosen by
    sensitivity (``allocate``): cheap 7x7 groups that the embedding leans on stay wide, costly high-resolution
    ones give more. Needs ``faces``; each gradual step keeps the same geometric share of the way to those counts."""
    from edgeface.training.models.registry import count_flops

    if flops is None and not 0 < ratio < 1:
        raise EdgefaceError(f"--ratio must be between 0 and 1, got {ratio}")
    if flops is not None and faces is None:
        raise EdgefaceError("--flops chooses channels by how much each group changes the embedding: give --data")
    if steps < 1:
        raise EdgefaceError(f"--steps must be at least 1, got {steps}")
    check_supported(model)
    groups = channel_groups(model)
    if not groups:
        raise EdgefaceError("no prunable channel groups (a Conv2D whose channels reach one conv or Dense through "
                            "BN, activations, pooling or depthwise layers only) found")
    if flops is None:
        final, allocation = {g.producer: g.channels * (1 - ratio) for g in groups}, []
    else:
        from edgeface.training.compress.allocate import allocate

        final, allocation = allocate(model, groups, faces, flops)
    thin, curve, tuned = model, [], faces is not None
    for k in range(1, steps + 1):
        counts = {g.producer: kept_channels(g.channels, (final[g.producer] / g.channels) ** (k / steps))
                  for g in groups}
        thin = remove_channels(thin, channel_groups(thin), counts)
        losses = finetune(thin, faces, epochs / steps, batch, lr, relation_weight=relation_weight) if tuned else []
        curve.append({"step": k, "flops": count_flops(thin), "loss": losses[-1] if losses else None,
                      "agreement": faces.agreement(thin) if tuned else None, **(on_step(k, thin) if on_step else {})})
    report = allocation or [{"group": g.producer, "channels": g.channels, "kept": counts[g.producer]} for g in groups]
    return thin, report + curve
