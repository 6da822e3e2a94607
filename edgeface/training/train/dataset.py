"""tf.data pipelines over prepared (aligned 112x112) face folders, with face-safe augmentation.

Augmentation keeps faces on the template: horizontal flip, small shifts and zooms (a few pixels, so the eyes stay
near their template positions), brightness/contrast/saturation jitter and occasional greyscale.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeface.data.prepare import MANIFEST, read_manifest
from edgeface.errors import EdgefaceError
from edgeface.manifest import InputSpec
from edgeface.training.tf_setup import tf
from edgeface.vision.detector_options import BLAZEFACE_ALIGNMENT, YUNET_ALIGNMENT


def prepared_faces(roots: Sequence[str | Path]) -> tuple[list[str], list[str | None]]:
    """(image paths, identities or None) of every ok face in the prepared folders."""
    paths: list[str] = []
    identities: list[str | None] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise EdgefaceError(f"data folder not found: {root}")
        records = [r for r in read_manifest(root) if r.get("status") == "ok"]
        if not records:
            raise EdgefaceError(f"no prepared faces in {root}: run 'edgeface data prepare SRC {root}' first")
        for r in records:
            paths.append(str(root / r["file"]))
            identities.append(r.get("identity"))
    return paths, identities


def clean_faces(roots: Sequence[str | Path]) -> tuple[list[str], list[Path]]:
    """For every ok face of the prepared folders (in ``prepared_faces``' order): the key (``<folder>/<file>``,
    resolved) of the clean face whose teacher embedding is its target, the face itself unless it is a view
    (``data views``: ``of`` in ``of_root``); and the folders those clean faces are in."""
    keys: list[str] = []
    folders: dict[Path, None] = {}
    for root in roots:
        root = Path(root)
        for n, r in enumerate((r for r in read_manifest(root) if r.get("status") == "ok"), 1):
            if "of" not in r:
                folder, file = root.resolve(), r["file"]
            elif isinstance(r.get("of_root"), str) and isinstance(r["of"], str):
                folder, file = Path(r["of_root"]), r["of"]
            else:
                raise EdgefaceError(f"{root / MANIFEST} ok record {n} is a view that does not name the folder of its "
                                    "clean face (made by an older edgeface): make the views again with 'edgeface "
                                    "data views'")
            if not (folder / file).is_file():
                raise EdgefaceError(f"{root / MANIFEST} ok record {n}: its clean face {folder / file} is missing")
            keys.append(str(folder / file))
            folders[folder] = None
    return keys, list(folders)


def prepared_alignment(roots: Sequence[str | Path]) -> str:
    """Which landmarks the prepared faces were aligned from; one model trains on one alignment only."""
    found = {r.get("detector", BLAZEFACE_ALIGNMENT) for root in roots for r in read_manifest(Path(root))
             if r.get("status") == "ok"}
    if len(found) > 1:
        raise EdgefaceError(f"the data folders were aligned from different detectors ({', '.join(sorted(found))}): "
                            "prepare them all with one --detector")
    return found.pop() if found else YUNET_ALIGNMENT


def encode_labels(identities: Sequence[str | None]) -> tuple[np.ndarray, list[str]]:
    """Integer labels for labelled faces (-1 for unlabelled) and the class names."""
    names = sorted({i for i in identities if i is not None})
    index = {n: k for k, n in enumerate(names)}
    return np.array([index[i] if i is not None else -1 for i in identities], np.int32), names


def augment(image: tf.Tensor) -> tf.Tensor:
    """Random flip, +-6 px shift, 0.94-1.08 zoom, colour jitter, 10 % greyscale on a float [0, 255] face."""
    size = tf.shape(image)[0]
    image = tf.image.random_flip_left_right(image)
    scale = tf.random.uniform([], 0.94, 1.08)
    new = tf.cast(tf.round(tf.cast(size, tf.float32) * scale), tf.int32)
    image = tf.image.resize(image, [new, new])
    image = tf.image.resize_with_crop_or_pad(image, size + 12, size + 12)
    image = tf.image.random_crop(image, [size, size, 3])
    image = tf.image.random_brightness(image, 25.0)
    image = tf.image.random_contrast(image, 0.75, 1.25)
    image = tf.image.random_saturation(image, 0.7, 1.3)
    grey = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))
    image = tf.where(tf.random.uniform([]) < 0.1, grey, image)
    return tf.clip_by_value(image, 0.0, 255.0)


def normalise(image: tf.Tensor, spec: InputSpec) -> tf.Tensor:
    """Float [0, 255] RGB face(s) -> model input, in the graph: the arithmetic of ``vision.embed.preprocess``."""
    return ((image[..., ::-1] if spec.channels == "BGR" else image) - spec.mean) * spec.scale


def make_dataset(paths: Sequence[str], targets: np.ndarray | tuple[np.ndarray, ...], spec: InputSpec, batch: int,
                 training: bool, seed: int = 0) -> tf.data.Dataset:
    """(normalised image, target) batches; ``targets`` are labels or teacher embeddings (or a tuple of such
    arrays), one row per path."""
    ds = tf.data.Dataset.from_tensor_slices((list(paths), targets))
    if training:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    def load(path: tf.Tensor, target):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        # area-resampled like vision.embed.at_size, so a student smaller than its chips trains on what it will see
        image = tf.image.resize(tf.cast(image, tf.float32), [spec.size, spec.size], method="area")
        return normalise(augment(image) if training else image, spec), target

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch, drop_remainder=training).prefetch(
        tf.data.AUTOTUNE)
