"""MobileFaceNet (Chen et al. 2018) with ReLU6 instead of PReLU so int8 runs on XNNPACK's fast kernels."""

from __future__ import annotations

from edgeface.training.models.registry import channels, conv_bn, dw_bn, embedding_head, register
from edgeface.training.tf_setup import keras

# (expansion, output channels, repeats, first stride)
BLOCKS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


def bottleneck(x, expansion: int, out: int, stride: int, name: str):
    """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 linear project, residual when shapes match."""
    inp = int(x.shape[-1])
    y = conv_bn(x, inp * expansion, name=f"{name}expand_")
    y = dw_bn(y, stride=stride, name=f"{name}")
    y = conv_bn(y, out, act=False, name=f"{name}project_")
    if stride == 1 and inp == out:
        y = keras.layers.Add(name=f"{name}add")([x, y])
    return y


@register("mobilefacenet", "MobileFaceNet, ReLU6, global depthwise head (~1 M params at 112x112)")
def build(input_size: int = 112, embedding_size: int = 128, width: float = 1.0) -> keras.Model:
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = conv_bn(inputs, channels(64, width), 3, 2, name="stem_")
    x = dw_bn(x, name="stem2_")
    n = 0
    for expansion, out, repeats, stride in BLOCKS:
        for r in range(repeats):
            x = bottleneck(x, expansion, channels(out, width), stride if r == 0 else 1, name=f"b{n}_")
            n += 1
    x = conv_bn(x, channels(512, width), name="neck_")
    return keras.Model(inputs, embedding_head(x, embedding_size), name="mobilefacenet")
