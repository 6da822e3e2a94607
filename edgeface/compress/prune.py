"""Pruning. Magnitude (unstructured, TFMOT): zeroes the smallest weights, which shrinks the gzipped file but
not the latency. Structured (channels): removes whole channels and rebuilds a genuinely thinner model, the only
pruning that cuts FLOPs and latency on CPUs.
"""

from __future__ import annotations

from collections.abc import Callable
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


CHANNELWISE = (keras.layers.BatchNormalization, keras.layers.DepthwiseConv2D)
PASS_THROUGH = (keras.layers.ReLU, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.Dropout,
                keras.layers.Activation)


@dataclass
class ChannelGroup:
    """Output channels of ``producer`` that live and die together: the per-channel layers after it (BN,
    depthwise) and the one layer that reads them (``consumer``: a Conv2D, or a Dense behind Flatten, where each
    channel occupies ``spatial`` rows). Covers MobileFaceNet's expand -> depthwise -> project and VGG's
    conv -> BN -> ReLU -> pool -> conv."""

    producer: str
    channelwise: list[str]
    consumer: str
    channels: int
    spatial: int = 0  # 0: the consumer is a conv; else positions per channel in the Dense's flattened input


def _consumers(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    out: dict[str, list[keras.layers.Layer]] = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for inbound in node.inbound_layers if isinstance(node.inbound_layers, list) else [node.inbound_layers]:
                out[inbound.name].append(layer)
    return out


def channel_groups(model: keras.Model) -> list[ChannelGroup]:
    """Every Conv2D whose output channels reach exactly one conv or Dense through per-channel layers only (so a
    channel can be removed everywhere it appears); residual adds, concatenations and global pooling end a chain."""
    consumers = _consumers(model)
    groups = []
    for layer in model.layers:
        if type(layer) is not keras.layers.Conv2D:
            continue
        channelwise, spatial, at = [], 0, layer
        while len(consumers[at.name]) == 1:
            at = consumers[at.name][0]
            if isinstance(at, CHANNELWISE) and not (isinstance(at, keras.layers.DepthwiseConv2D)
                                                     and at.depth_multiplier != 1):
                channelwise.append(at.name)
            elif isinstance(at, keras.layers.Flatten):
                spatial = int(np.prod(at.input_shape[1:-1]))
            elif not isinstance(at, PASS_THROUGH):
                break
        reads_channels = (type(at) is keras.layers.Conv2D and not spatial) or (type(at) is keras.layers.Dense
                                                                               and spatial > 0)
        if at is not layer and reads_channels:
            groups.append(ChannelGroup(layer.name, channelwise, at.name, layer.filters, spatial))
    return groups


def _ranking(model: keras.Model, group: ChannelGroup) -> np.ndarray:
    """Channel importance: |gamma| of the first BN after the producer (a channel the network scales down
    contributes little). Without BN (dlib's port has every scale folded into its conv) the weights alone say it,
    but the producer's norm alone does not: ReLU lets a channel's filter grow by any factor its reader shrinks by
    with the same function. So a channel's importance is the L2 norm of its filter (bias included) times the L2
    norm of the consumer's weights that read it, a product no such rescaling changes."""
    for name in group.channelwise:
        layer = model.get_layer(name)
        if isinstance(layer, keras.layers.BatchNormalization):
            return np.abs(layer.gamma.numpy())
    produced = model.get_layer(group.producer).get_weights()
    writes = np.square(produced[0]).reshape(-1, group.channels).sum(0)
    if len(produced) > 1:
        writes += np.square(produced[1])
    read = model.get_layer(group.consumer).get_weights()[0]
    if group.spatial:
        reads = np.square(read.reshape(group.spatial, group.channels, -1)).sum((0, 2))
    else:
        reads = np.square(read).sum((0, 1, 3))
    return np.sqrt(writes * reads)


def _slicers(group: ChannelGroup, idx: np.ndarray) -> dict[str, Callable[[list[np.ndarray]], list[np.ndarray]]]:
    """How each layer of the group keeps channels ``idx`` of its weights."""
    def consumer(w: list[np.ndarray]) -> list[np.ndarray]:
        if not group.spatial:
            return [w[0][:, :, idx, :], *w[1:]]
        rows = w[0].reshape(group.spatial, group.channels, -1)[:, idx, :]
        return [rows.reshape(-1, w[0].shape[-1]), *w[1:]]

    slicers = {group.producer: lambda w: [w[0][..., idx], *[v[idx] for v in w[1:]]], group.consumer: consumer}
    for name in group.channelwise:
        slicers[name] = lambda w: [v[:, :, idx, :] if v.ndim == 4 else v[idx] for v in w]
    return slicers


def _kept(channels: int, fraction: float) -> int:
    """Channels left when keeping ``fraction``: multiples of 8 (SIMD-friendly), never under 8, and groups under
    16 channels are left whole."""
    if channels < 16:
        return channels
    return min(channels, max(8, round(channels * fraction / 8) * 8))


def remove_channels(model: keras.Model, groups: list[ChannelGroup], counts: dict[str, int]) -> keras.Model:
    """A thinner copy of ``model`` keeping the ``counts[producer]`` most important channels of each group."""
    keep = {g.producer: np.sort(np.argsort(-_ranking(model, g))[: counts[g.producer]]) for g in groups}
    config = model.get_config()
    for layer in config["layers"]:
        if layer["config"]["name"] in keep:
            layer["config"]["filters"] = len(keep[layer["config"]["name"]])
    thin = keras.Model.from_config(config)
    weights = {layer.name: layer.get_weights() for layer in model.layers}
    for g in groups:  # a consumer may also be the next group's producer: slice its input, then its output
        for name, slicer in _slicers(g, keep[g.producer]).items():
            weights[name] = slicer(weights[name])
    for name, w in weights.items():
        if w:
            thin.get_layer(name).set_weights(w)
    return thin


def structured_prune(model: keras.Model, ratio: float, faces: FaceSet | None, epochs: float = 2.0,
                     batch: int = 64, lr: float = 5e-4, steps: int = 1,
                     relation_weight: float = 0.0, on_step: Callable[[int, keras.Model], dict] | None = None,
                     flops: float | None = None) -> tuple[keras.Model, list[dict]]:
    """Remove ``ratio`` of the channels of every channel group (``channel_groups``), the least important first
    (``_ranking``), into a thinner model built from the edited config; with ``faces``, fine-tune by distilling
    the original model's embeddings (cosine, plus ``relation_weight`` x the relation loss).

    ``steps`` > 1 prunes gradually: each step removes an equal share (geometrically: the same fraction of what is
    left), re-ranks on the fine-tuned survivors and fine-tunes ``epochs / steps``. Why: channels that matter only
    once their neighbours are gone get the chance to show it, and each fine-tune repairs a smaller injury.
    The report has one row per group (``"group"``), then one per step (``"step"``: FLOPs, last fine-tuning loss and
    mean cosine to the original on the fine-tuning faces, and whatever ``on_step(step, model)`` returns, e.g. an
    LFW score of the exported step), the curve a gradual run is judged by.

    ``flops`` (instead of ``ratio``) removes that fraction of the model's FLOPs with per-group shares chosen by
    sensitivity (``allocate``): cheap 7x7 groups that the embedding leans on stay wide, costly high-resolution
    ones give more. Needs ``faces``; each gradual step keeps the same geometric share of the way to those counts."""
    from edgeface.models.registry import count_flops

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
        from edgeface.compress.allocate import allocate

        final, allocation = allocate(model, groups, faces, flops)
    thin, curve, tuned = model, [], faces is not None
    for k in range(1, steps + 1):
        counts = {g.producer: _kept(g.channels, (final[g.producer] / g.channels) ** (k / steps)) for g in groups}
        thin = remove_channels(thin, channel_groups(thin), counts)
        losses = finetune(thin, faces, epochs / steps, batch, lr, relation_weight=relation_weight) if tuned else []
        curve.append({"step": k, "flops": count_flops(thin), "loss": losses[-1] if losses else None,
                      "agreement": faces.agreement(thin) if tuned else None, **(on_step(k, thin) if on_step else {})})
    report = allocation or [{"group": g.producer, "channels": g.channels, "kept": counts[g.producer]} for g in groups]
    return thin, report + curve
