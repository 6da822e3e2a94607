"""``edgeface distill``: a student learns to reproduce a teacher's embeddings (cosine loss).

Teacher targets are computed once per face and cached (``edgeface.data.targets``). They are centred on their
mean before normalising: raw dlib descriptors share a large common component (cosine ~0.85 between strangers),
and matching that would waste the student's capacity on a constant. Works on unlabelled folders.

With ``identity_weight > 0`` the labelled faces among them also train an ArcFace head on the student's
embedding. Why: a per-photo target says where one photo goes, not that two photos of one person belong together
nor that strangers stay apart; the margin loss says both, which is what verification at a low FAR needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.training.train.dataset import (
    clean_faces,
    encode_labels,
    make_dataset,
    prepared_alignment,
    prepared_faces,
)
from edgeface.training.train.loop import TrainConfig, fit
from edgeface.training.train.targets import teacher_targets
from edgeface.vision.embed import DLIB_PORT, l2_normalise


def cosine_loss(y_true, y_pred):
    from edgeface.training.tf_setup import tf

    return 1.0 - tf.reduce_sum(tf.math.l2_normalize(y_pred, axis=-1) * y_true, axis=-1)


def relation_loss(y_true, y_pred, tail_weight: float = 0.0):
    """Mean squared difference between the batch's student and teacher cosine-similarity matrices.

    Why beside the per-face cosine: a student that misses each target by the same small angle can still get the
    *relations* wrong (two strangers pulled closer than the teacher puts them), and relations are what a
    verification threshold reads. ``tail_weight`` adds that error once more, ``tail_weight`` times, for pairs of
    different faces the student puts *closer* than the teacher: the impostor tail a threshold at FAR 1e-3 reads,
    which a symmetric loss lets grow as long as other pairs move apart.
    """
    from edgeface.training.tf_setup import tf

    student = tf.math.l2_normalize(y_pred, axis=-1)
    teacher = tf.matmul(y_true, y_true, transpose_b=True)
    diff = tf.matmul(student, student, transpose_b=True) - teacher
    loss = tf.reduce_mean(tf.square(diff), axis=-1)  # per face: its row of the matrix
    if tail_weight:  # one face's rows (the diagonal, a view and its clean face: teacher cosine 1) cannot be closer
        loss += tail_weight * tf.reduce_mean(tf.square(tf.nn.relu(diff)), axis=-1)
    return loss


def distillation_loss(relation_weight: float, centre: np.ndarray | None = None, tail_weight: float = 0.0):
    """Cosine to the teacher, plus ``relation_weight`` x the relation loss when it is above zero. With ``centre``
    (the teacher's mean unit embedding; the targets then centred on it, see ``centred_targets``) both compare the
    student's unit embedding minus that mean: the student stays in the teacher's space, and the loss weighs the
    directions that tell people apart instead of the one every face shares."""
    if relation_weight == 0 and centre is None:
        return cosine_loss

    def loss(y_true, y_pred):
        if centre is not None:
            from edgeface.training.tf_setup import tf

            y_pred = tf.math.l2_normalize(y_pred, axis=-1) - tf.constant(centre, tf.float32)
        out = cosine_loss(y_true, y_pred)
        return out + relation_weight * relation_loss(y_true, y_pred, tail_weight) if relation_weight else out

    return loss


ANISOTROPIC = 0.5  # mean cosine between the teacher's embeddings of different faces above which the loss is centred


def shared_direction(unit: np.ndarray) -> np.ndarray | None:
    """The teacher's mean unit embedding when its embeddings share one strong direction (mean cosine between faces
    over ``ANISOTROPIC``, as dlib's do: strangers score 0.85-0.90), else None. Why it matters: in a space that
    crowded a small angle is all the difference between two people, so the losses compare embeddings minus it
    (``distillation_loss(centre=...)``)."""
    sample = unit[:: max(1, len(unit) // 1000)]
    shared = float(np.mean(sample @ sample.T)) if len(sample) > 1 else 0.0
    return unit.mean(0) if shared > ANISOTROPIC else None


def centred_targets(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = targets.mean(0)
    centred = targets - mean
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12), mean


def check_teacher(teacher: str, alignment: str) -> None:
    """A .tflite/Keras teacher must have been made for the chip the prepared faces were aligned to. Its input size
    may differ from the student's: each sees the same chip area-resampled to its own size, as ``recognize`` does,
    so a 106 px student can learn from a 150 px teacher. Where the face sits in the chip may not differ."""
    if teacher in ("dlib", DLIB_PORT):  # dlib's own alignment, from the source photo and the stored box
        return
    from edgeface.training.train.keras_embedder import load_any_embedder

    theirs = getattr(load_any_embedder(teacher), "alignment", None)
    if theirs is not None and theirs != alignment:
        raise EdgefaceError(f"teacher {teacher} was made for {theirs} chips, the data is aligned to {alignment}: "
                            f"prepare the folders with --alignment {theirs}")


def distill(data: list[Path], teacher: str, config: TrainConfig, workers: int = 2, identity_weight: float = 0.0,
            margin: float = 0.3, scale: float = 32.0, relation_weight: float = 0.0,
            callbacks: list | None = None, teacher_flip: bool = False, centre: bool = True,
            clean_targets: bool = False, tail_weight: float = 0.0) -> dict:
    """Train ``config.arch`` on the teacher's embeddings of every prepared face in ``data`` (and, with
    ``identity_weight``, on the identities of the labelled ones).

    ``teacher_flip``: the teacher's embedding is the mean of the face's and its mirror's (a better teacher, at no
    cost to the student). ``centre=False`` keeps the teacher's own geometry: a student that starts as the teacher
    (``--arch dlib-resnet``) must not be moved to centred targets, which cost dlib's descriptor 1.2 pp on LFW.

    ``clean_targets``: a damaged view (``data views``) is taught the teacher's embedding of the clean face it was made
    from, not the teacher's reading of the damage. Why: a student taught the teacher's view of a face in a dim room
    can at best be as lost as the teacher there; taught the clean face, it learns to see through the light, and the
    batch relation loss then keeps strangers under one harsh light as far apart as the teacher keeps them in daylight
    (the same-setting strangers issue #40 measured)."""
    if identity_weight < 0 or relation_weight < 0 or tail_weight < 0:
        raise EdgefaceError("--identity-weight, --relation-weight and --tail-weight must be >= 0")
    if tail_weight and not relation_weight:
        raise EdgefaceError("--tail-weight weighs part of the relation loss: give --relation-weight too")
    alignment = prepared_alignment(data)
    check_teacher(teacher, alignment)
    paths, identities = prepared_faces(data)
    keys, folders = clean_faces(data) if clean_targets else (paths, list(data))
    table = teacher_targets(folders, teacher, workers=workers, flip=teacher_flip)
    raw = np.stack([table[k] for k in keys]).astype(np.float32)
    # raw targets keep the plain cosine even in a crowded teacher space (unlike FaceSet's fine-tuning after
    # compression): comparing both minus the teacher's shared direction gave a 106 px student of dlib's network
    # 94.55 % on LFW after a pass against 94.97 % with the plain cosine, and the shipped recipe was made without it
    targets = centred_targets(raw)[0] if centre else l2_normalise(raw)
    config.embedding_size = targets.shape[1]
    described = f"cosine to {'centred ' if centre else ''}teacher embedding" + (
        f" + {relation_weight} x batch relation (similarity matrix MSE"
        + (f", pairs pulled closer than the teacher's x {1 + tail_weight})" if tail_weight else ")")
        if relation_weight else "")
    taught_clean = sum(k != str(Path(p).resolve()) for k, p in zip(keys, paths, strict=True)) if clean_targets else 0
    extra = {"step": "distill", "teacher": teacher, "teacher_flip": teacher_flip,
             "views_taught_their_clean_face": taught_clean, "faces": len(paths),
             "loss": described, "alignment": alignment}
    distil_loss = distillation_loss(relation_weight, tail_weight=tail_weight)
    steps = len(paths) // config.batch
    if identity_weight == 0:
        def datasets(spec, batch):
            return make_dataset(paths, targets, spec, batch, training=True, seed=config.seed)

        return fit(config, datasets, distil_loss, steps_per_epoch=steps, extra=extra, callbacks=callbacks)

    from edgeface.training.tf_setup import keras, tf
    from edgeface.training.train.train import with_margin_head

    labels, names = encode_labels(identities)
    if len(names) < 2:
        raise EdgefaceError(f"--identity-weight needs labelled faces of at least 2 identities, found {len(names)}")

    def build_train_model(backbone: keras.Model) -> keras.Model:
        return with_margin_head(backbone, len(names), "arcface", scale, margin, keep_embedding=True)

    def datasets(spec, batch):
        ds = make_dataset(paths, (targets, labels), spec, batch, training=True, seed=config.seed)

        def split(x, target):
            embedding, label = target
            known = label >= 0  # unlabelled faces (UTKFace) only distil: their identity loss weighs 0
            return ((x, tf.maximum(label, 0)), {"backbone": embedding, "head": tf.maximum(label, 0)},
                    {"backbone": tf.ones_like(label, tf.float32), "head": tf.cast(known, tf.float32)})

        return ds.map(split)

    losses = {"backbone": distil_loss, "head": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}
    extra.update({"loss": f"{described} + {identity_weight} x ArcFace (m={margin}, "
                          f"s={scale}) on labelled faces", "identities": len(names),
                  "labelled_faces": int((labels >= 0).sum())})
    return fit(config, datasets, losses, steps_per_epoch=steps, build_train_model=build_train_model, extra=extra,
               loss_weights={"backbone": 1.0, "head": identity_weight}, callbacks=callbacks)
