"""Pruning. Magnitude (unstructured, TFMOT): zeroes the smallest weights, which shrinks the gzipped file but
not the latency. Structured (channels): removes whole channels and rebuilds a genuinely thinner model, the only
pruning that cuts FLOPs and latency on CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeface.compress.finetune import FaceSet, finetune
from edgeface.errors import EdgefaceError
from edgeface.tf_setup import keras

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


def magnitude_prune(model: keras.Model, sparsity: float, faces: FaceSet, epochs: float = 2.0,
                    batch: int = 64, lr: float = 5e-4) -> tuple[keras.Model, list[dict]]:
    """TFMOT low-magnitude pruning of Conv2D/Dense kernels to ``sparsity`` (PolynomialDecay over the first 70 %
    of fine-tuning), then ``strip_pruning``. The model passed in is not modified (it is cloned first)."""
    import tensorflow_model_optimization as tfmot

    if not 0 < sparsity < 1:
        raise EdgefaceError(f"--sparsity must be between 0 and 1, got {sparsity}")
    check_supported(model)
    steps = max(1, len(faces.faces) // batch) * max(1, round(epochs))
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=max(1, int(0.7 * steps)),
                                                   frequency=max(1, steps // 20))
    clone = keras.models.clone_model(model)  # prune_low_magnitude rewires what it is given: never the original
    clone.set_weights(model.get_weights())

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, PRUNABLE) and not isinstance(layer, keras.layers.DepthwiseConv2D):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    pruned = keras.models.clone_model(clone, clone_function=wrap)  # wraps clone's layers: their weights carry over
    finetune(pruned, faces, epochs, batch, lr, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    return stripped, sparsity_report(stripped)


@dataclass
class ChannelGroup:
    """Channels that live and die together: conv(1x1) -> BN -> act -> depthwise -> BN [-> act] -> conv."""

    expand: str
    expand_bn: str
    depthwise: str
    depthwise_bn: str
    project: str
    channels: int


def _consumers(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    out: dict[str, list[keras.layers.Layer]] = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for inbound in node.inbound_layers if isinstance(node.inbound_layers, list) else [node.inbound_layers]:
                out[inbound.name].append(layer)
    return out


def channel_groups(model: keras.Model) -> list[ChannelGroup]:
    """Every expand/depthwise/project chain whose middle channels feed nothing else (safe to remove)."""
    consumers = _consumers(model)

    def only(layer: keras.layers.Layer) -> keras.layers.Layer | None:
        nxt = consumers[layer.name]
        return nxt[0] if len(nxt) == 1 else None

    groups = []
    for layer in model.layers:
        if type(layer) is not keras.layers.Conv2D or layer.kernel_size != (1, 1) or layer.use_bias:
            continue
        bn = only(layer)
        act = only(bn) if isinstance(bn, keras.layers.BatchNormalization) else None
        dw = only(act) if isinstance(act, keras.layers.ReLU) else None
        if not isinstance(dw, keras.layers.DepthwiseConv2D) or dw.depth_multiplier != 1:
            continue
        dw_bn = only(dw)
        after = only(dw_bn) if isinstance(dw_bn, keras.layers.BatchNormalization) else None
        if isinstance(after, keras.layers.ReLU):
            after = only(after)
        if type(after) is keras.layers.Conv2D and after.kernel_size == (1, 1):
            groups.append(ChannelGroup(layer.name, bn.name, dw.name, dw_bn.name, after.name, layer.filters))
    return groups


def structured_prune(model: keras.Model, ratio: float, faces: FaceSet | None, epochs: float = 2.0,
                     batch: int = 64, lr: float = 5e-4) -> tuple[keras.Model, list[dict]]:
    """Remove ``ratio`` of the channels of every expand/depthwise/project group, ranked by the BN scale |gamma|
    of the expansion (a channel the network has scaled down contributes little), copy the surviving weights
    into a thinner model built from the edited config, then fine-tune by distillation."""
    if not 0 < ratio < 1:
        raise EdgefaceError(f"--ratio must be between 0 and 1, got {ratio}")
    check_supported(model)
    groups = channel_groups(model)
    if not groups:
        raise EdgefaceError("no prunable channel groups (1x1 conv -> BN -> ReLU -> depthwise -> BN -> 1x1 conv) found")
    keep: dict[str, np.ndarray] = {}
    for g in groups:
        gamma = np.abs(model.get_layer(g.expand_bn).gamma.numpy())
        n = max(8, round(g.channels * (1 - ratio) / 8) * 8) if g.channels >= 16 else g.channels
        keep[g.expand] = np.sort(np.argsort(-gamma)[: min(n, g.channels)])
    config = model.get_config()
    for layer in config["layers"]:
        if layer["config"]["name"] in keep:
            layer["config"]["filters"] = len(keep[layer["config"]["name"]])
    thin = keras.Model.from_config(config)
    by_role = {}
    for g in groups:
        idx = keep[g.expand]
        by_role[g.expand] = lambda w, i=idx: [w[0][..., i]]
        by_role[g.expand_bn] = lambda w, i=idx: [v[i] for v in w]
        by_role[g.depthwise] = lambda w, i=idx: [w[0][:, :, i, :]]
        by_role[g.depthwise_bn] = lambda w, i=idx: [v[i] for v in w]
        by_role[g.project] = lambda w, i=idx: [w[0][:, :, i, :], *w[1:]]
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            thin.get_layer(layer.name).set_weights(by_role[layer.name](weights) if layer.name in by_role else weights)
    if faces is not None:
        finetune(thin, faces, epochs, batch, lr)
    report = [{"group": g.expand, "channels": g.channels, "kept": len(keep[g.expand])} for g in groups]
    return thin, report
