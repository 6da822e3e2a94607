"""A few-thousand-parameter model for tests: same layer types as the real ones, trains in seconds."""

from __future__ import annotations

from edgeface.training.models.registry import channels, conv_bn, dw_bn, embedding_head, register
from edgeface.training.tf_setup import keras


@register("tiny", "test model: 3 strided convs + depthwise, global depthwise head")
def build(input_size: int = 112, embedding_size: int = 32, width: float = 1.0) -> keras.Model:
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = conv_bn(inputs, channels(8, width), 3, 2, name="c1_")
    x = dw_bn(x, stride=2, name="c2_")
    x = conv_bn(x, channels(16, width), name="c2p_")
    x = dw_bn(x, stride=2, name="c3_")
    x = conv_bn(x, channels(32, width), name="c3p_")
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    return keras.Model(inputs, embedding_head(x, embedding_size), name="tiny")
