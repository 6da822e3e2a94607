"""The seed's baseline: a VGG16-style conv stack (13 convs, 5 pools) with a width multiplier, whose penultimate
Dense layer is the embedding when trained as an identity classifier."""

from __future__ import annotations

from edgeface.training.models.registry import BN_MOMENTUM, channels, register
from edgeface.training.tf_setup import keras

STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


@register("vgg16", "VGG16-style classifier backbone, BN + ReLU, width multiplier, Dense embedding")
def build(input_size: int = 112, embedding_size: int = 128, width: float = 0.25) -> keras.Model:
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    for s, (filters, convs) in enumerate(STAGES):
        for c in range(convs):
            x = keras.layers.Conv2D(channels(filters, width), 3, padding="same", use_bias=False,
                                    name=f"s{s}c{c}_conv")(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"s{s}c{c}_bn")(x)
            x = keras.layers.ReLU(name=f"s{s}c{c}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"s{s}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    x = keras.layers.Dense(embedding_size, name="embedding_dense")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="embedding")(x)
    return keras.Model(inputs, x, name="vgg16")
