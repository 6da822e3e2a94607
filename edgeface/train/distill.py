"""``edgeface distill``: a student learns to reproduce a teacher's embeddings (cosine loss).

Teacher targets are computed once per face and cached (``edgeface.data.targets``). They are centred on their
mean before normalising: raw dlib descriptors share a large common component (cosine ~0.85 between strangers),
and matching that would waste the student's capacity on a constant. Works on unlabelled folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeface.data.targets import teacher_targets
from edgeface.errors import EdgefaceError
from edgeface.train.dataset import make_dataset, prepared_faces
from edgeface.train.loop import TrainConfig, fit


def cosine_loss(y_true, y_pred):
    from edgeface.tf_setup import tf

    return 1.0 - tf.reduce_sum(tf.math.l2_normalize(y_pred, axis=-1) * y_true, axis=-1)


def centred_targets(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = targets.mean(0)
    centred = targets - mean
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12), mean


def check_teacher(teacher: str, size: int) -> None:
    """A .tflite/Keras teacher must take aligned faces of the student's input size."""
    if teacher == "dlib":
        return
    from edgeface.vision.embed import load_embedder

    embedder = load_embedder(teacher)
    spec = getattr(embedder, "spec", None)
    if spec is not None and spec.size != size:
        raise EdgefaceError(f"teacher {teacher} takes {spec.size}x{spec.size} input, the student {size}x{size}: "
                            "use --input-size to match")


def distill(data: list[Path], teacher: str, config: TrainConfig, workers: int = 2) -> dict:
    """Train ``config.arch`` on the teacher's embeddings of every prepared face in ``data``."""
    check_teacher(teacher, config.input_size)
    paths, _ = prepared_faces(data)
    table = teacher_targets(list(data), teacher, workers=workers)
    raw = np.stack([table[p] for p in paths]).astype(np.float32)
    targets, _ = centred_targets(raw)
    config.embedding_size = targets.shape[1]

    def datasets(spec, batch):
        return make_dataset(paths, targets, spec, batch, training=True, seed=config.seed)

    return fit(config, datasets, cosine_loss, steps_per_epoch=len(paths) // config.batch,
               extra={"step": "distill", "teacher": teacher, "faces": len(paths),
                      "loss": "cosine to centred teacher embedding"})
