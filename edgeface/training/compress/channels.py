"""Channel surgery for structured pruning: which output channels of a conv live and die together (a channel group),
how much each channel matters, and the thinner model that keeps the chosen ones. Used by ``prune`` (removing a
uniform share) and ``allocate`` (choosing each group's share by measured damage), so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeface.training.tf_setup import keras

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


def channel_importance(model: keras.Model, group: ChannelGroup) -> np.ndarray:
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


def channel_flops(model: keras.Model, group: ChannelGroup) -> float:
    """FLOPs one channel of the group costs, as ``count_flops`` counts them (2 per multiply-add): its filter in the
    producer, its depthwise filter, and the consumer's weights that read it, from the layers' shapes. The same
    number a thinner model built and profiled gives (checked on MobileFaceNet and dlib's ResNet), without the 2.9 s
    that took a group."""
    def positions(layer: keras.layers.Layer) -> int:
        return int(np.prod(layer.output_shape[1:-1]))

    producer = model.get_layer(group.producer)
    kh, kw, cin, _ = producer.kernel.shape
    flops = (2 * kh * kw * cin + producer.use_bias) * positions(producer)
    for name in group.channelwise:
        layer = model.get_layer(name)
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # BN: the profiler counts none (folded at inference)
            flops += (2 * int(np.prod(layer.kernel_size)) + layer.use_bias) * positions(layer)
    consumer = model.get_layer(group.consumer)
    if group.spatial:
        return float(flops + 2 * group.spatial * consumer.units)
    kh, kw, _, cout = consumer.kernel.shape
    return float(flops + 2 * kh * kw * cout * positions(consumer))


def by_importance(model: keras.Model, group: ChannelGroup) -> np.ndarray:
    """The group's channels, most important first: a thinner model keeps a prefix of this order."""
    return np.argsort(-channel_importance(model, group), kind="stable")


def slicers(group: ChannelGroup, idx: np.ndarray) -> dict[str, Callable[[list[np.ndarray]], list[np.ndarray]]]:
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


def without_inputs(weights: list[np.ndarray], group: ChannelGroup, drop: np.ndarray) -> list[np.ndarray]:
    """The consumer's weights with its inputs from channels ``drop`` zeroed. The group's channels reach nothing but
    the consumer, so the model then computes what the thinner model without them computes, with nothing rebuilt:
    what lets ``allocate`` measure each group's damage on one copy of the model instead of building one per probe
    (1.7 s each for a small MobileFaceNet, plus tracing its predict function)."""
    kernel = weights[0].copy()
    if group.spatial:
        kernel.reshape(group.spatial, group.channels, -1)[:, drop, :] = 0
    else:
        kernel[:, :, drop, :] = 0
    return [kernel, *weights[1:]]


def kept_channels(channels: int, fraction: float) -> int:
    """Channels left when keeping ``fraction``: multiples of 8 (SIMD-friendly), never under 8, and groups under
    16 channels are left whole."""
    if channels < 16:
        return channels
    return min(channels, max(8, round(channels * fraction / 8) * 8))


def remove_channels(model: keras.Model, groups: list[ChannelGroup], counts: dict[str, int]) -> keras.Model:
    """A thinner copy of ``model`` keeping the ``counts[producer]`` most important channels of each group."""
    keep = {g.producer: np.sort(by_importance(model, g)[: counts[g.producer]]) for g in groups}
    config = model.get_config()
    for layer in config["layers"]:
        if layer["config"]["name"] in keep:
            layer["config"]["filters"] = len(keep[layer["config"]["name"]])
    thin = keras.Model.from_config(config)
    weights = {layer.name: layer.get_weights() for layer in model.layers}
    for g in groups:  # a consumer may also be the next group's producer: slice its input, then its output
        for name, slicer in slicers(g, keep[g.producer]).items():
            weights[name] = slicer(weights[name])
    for name, w in weights.items():
        if w:
            thin.get_layer(name).set_weights(w)
    return thin
