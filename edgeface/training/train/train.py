"""``edgeface train``: identity classification with a softmax, ArcFace or CosFace head on labelled folders.

The head sits on top of the embedding network (``backbone``) only during training; what is saved and exported
is the embedding network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeface.choices import HEADS
from edgeface.errors import EdgefaceError
from edgeface.training.tf_setup import keras, tf
from edgeface.training.train.dataset import encode_labels, make_dataset, prepared_alignment, prepared_faces
from edgeface.training.train.loop import TrainConfig, fit


@keras.utils.register_keras_serializable(package="edgeface")
class MarginHead(keras.layers.Layer):
    """Class logits from an embedding. softmax: a plain Dense layer; arcface: s*cos(theta + m) for the true
    class; cosface: s*(cos(theta) - m). Margins make classes separable by angle, which is what verification
    with cosine similarity needs."""

    def __init__(self, classes: int, kind: str = "arcface", scale: float = 32.0, margin: float = 0.3,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.classes, self.kind, self.scale, self.margin = classes, kind, scale, margin

    def build(self, input_shape) -> None:
        dim = int(input_shape[0][-1])
        self.w = self.add_weight(name="w", shape=(dim, self.classes), initializer="glorot_uniform")
        if self.kind == "softmax":
            self.b = self.add_weight(name="b", shape=(self.classes,), initializer="zeros")

    def call(self, inputs, training=None):
        emb, labels = inputs
        if self.kind == "softmax":
            return tf.matmul(emb, self.w) + self.b
        cos = tf.matmul(tf.math.l2_normalize(emb, 1), tf.math.l2_normalize(self.w, 0))
        cos = tf.clip_by_value(cos, -1.0 + 1e-6, 1.0 - 1e-6)
        onehot = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), self.classes)
        if self.kind == "arcface":
            theta = tf.acos(cos)
            target = tf.cos(tf.minimum(theta + self.margin, np.pi))
        else:
            target = cos - self.margin
        return self.scale * tf.where(onehot > 0, target, cos)

    def get_config(self) -> dict:
        return {**super().get_config(), "classes": self.classes, "kind": self.kind, "scale": self.scale,
                "margin": self.margin}


def with_margin_head(backbone: keras.Model, classes: int, kind: str, scale: float, margin: float,
                     keep_embedding: bool = False) -> keras.Model:
    """(image, label) -> class logits, or {"backbone": embedding, "head": logits} with ``keep_embedding``.

    The backbone becomes layer ``backbone`` so training code finds the embedding network inside."""
    backbone._name = "backbone"
    image = keras.Input(backbone.inputs[0].shape[1:], name="image")
    label = keras.Input((), dtype="int32", name="label")
    embedding = backbone(image)
    logits = MarginHead(classes, kind, scale, margin, name="head")([embedding, label])
    outputs = {"backbone": embedding, "head": logits} if keep_embedding else logits
    return keras.Model([image, label], outputs, name="margin_training")


def train(data: list[Path], config: TrainConfig, head: str = "arcface", margin: float = 0.3,
          scale: float = 32.0, callbacks: list | None = None) -> dict:
    """Train ``config.arch`` as an identity classifier on the labelled faces of ``data``."""
    if head not in HEADS:
        raise EdgefaceError(f"unknown --head {head!r}; choose one of {', '.join(HEADS)}")
    paths, identities = prepared_faces(data)
    labels, names = encode_labels(identities)
    keep = labels >= 0
    if not keep.any():
        raise EdgefaceError("no labelled faces: identity training needs <person>/<img> folders")
    if len(names) < 2:
        raise EdgefaceError(f"identity training needs at least 2 identities, found {len(names)}")
    paths = [p for p, k in zip(paths, keep, strict=True) if k]
    labels = labels[keep]

    def build_train_model(backbone: keras.Model) -> keras.Model:
        return with_margin_head(backbone, len(names), head, scale, margin)

    def datasets(spec, batch):
        ds = make_dataset(paths, labels, spec, batch, training=True, seed=config.seed)
        return ds.map(lambda x, y: ((x, y), y))

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return fit(config, datasets, loss, steps_per_epoch=len(paths) // config.batch,
               build_train_model=build_train_model,
               extra={"step": "train", "alignment": prepared_alignment(data), "head": head, "margin": margin,
                      "scale": scale, "faces": len(paths),
                      "identities": len(names)}, callbacks=callbacks)
