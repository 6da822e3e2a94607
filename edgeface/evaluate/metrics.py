"""Verification metrics on pair scores (higher score = more alike), numpy only.

The standard LFW protocol: for each of the 10 folds pick the accuracy-maximising threshold on the other 9,
score the held-out fold, report mean +- standard error; plus ROC AUC and TAR at fixed FAR.
"""

from __future__ import annotations

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.evaluate.stats import standard_error


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise EdgefaceError(f"scores {scores.shape} and labels {labels.shape} must be equal-length vectors")
    if not labels.any() or labels.all():
        raise EdgefaceError("need both genuine and impostor pairs")
    if not np.isfinite(scores).all():
        raise EdgefaceError("scores contain NaN or infinite values")
    return scores, labels


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy of ``score > threshold``; ties go to the lowest threshold.

    All cut points between consecutive distinct scores are tried at once with cumulative sums, O(n log n).
    """
    scores, labels = _check(scores, labels)
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    # accepting everything above cut k (k = number rejected): correct = impostors rejected + genuines accepted
    imp_rejected = np.concatenate([[0], np.cumsum(~y)])
    gen_accepted = y.sum() - np.concatenate([[0], np.cumsum(y)])
    correct = imp_rejected + gen_accepted
    valid = np.concatenate([[True], s[1:] != s[:-1], [True]])  # cut only between distinct scores
    correct = np.where(valid, correct, -1)
    k = int(np.argmax(correct))
    if k == 0:
        thr = s[0] - 1e-6
    elif k == len(s):
        thr = s[-1] + 1e-6
    else:
        thr = (s[k - 1] + s[k]) / 2
    return float(thr), float(correct[k] / len(s))


def accuracy_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    return float(np.mean((np.asarray(scores) > threshold) == np.asarray(labels).astype(bool)))


def kfold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> dict:
    """Accuracy per held-out fold with the threshold chosen on the other folds; mean and standard error."""
    scores, labels = _check(scores, labels)
    folds = np.asarray(folds)
    ids = np.unique(folds)
    if len(ids) < 2:
        raise EdgefaceError("k-fold evaluation needs at least 2 folds")
    accs, thrs = [], []
    for f in ids:
        test = folds == f
        thr, _ = best_threshold(scores[~test], labels[~test])
        thrs.append(thr)
        accs.append(accuracy_at(scores[test], labels[test], thr))
    accs_arr = np.array(accs)
    return {
        "accuracy": float(accs_arr.mean()),
        "accuracy_se": standard_error(accs_arr),
        "fold_accuracy": [float(a) for a in accs_arr],
        "fold_threshold": [float(t) for t in thrs],
    }


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random genuine pair outscores a random impostor pair (ties count half)."""
    scores, labels = _check(scores, labels)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def threshold_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> float:
    """Lowest threshold t with at most floor(far * impostors) impostor scores strictly above t."""
    scores, labels = _check(scores, labels)
    impostors = np.sort(scores[~labels])[::-1]
    allowed = int(np.floor(far * len(impostors)))
    if allowed >= len(impostors):
        return float(impostors[-1] - 1e-6)
    return float(impostors[allowed])


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> tuple[float, float]:
    """(true accept rate, threshold) at a false accept rate of at most ``far``."""
    scores, labels = _check(scores, labels)
    thr = threshold_at_far(scores, labels, far)
    return float(np.mean(scores[labels] > thr)), thr


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, TAR) at every distinct threshold, for plotting."""
    scores, labels = _check(scores, labels)
    order = np.argsort(-scores, kind="stable")
    y = labels[order]
    tar = np.concatenate([[0], np.cumsum(y) / y.sum()])
    far = np.concatenate([[0], np.cumsum(~y) / (~y).sum()])
    return far, tar


def verification_report(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray,
                        fars: tuple[float, ...] = (1e-3, 3e-3, 1e-2)) -> dict:
    """Everything ``edgeface eval`` reports about a set of scored pairs."""
    out = kfold_accuracy(scores, labels, folds)
    thr, acc = best_threshold(scores, labels)
    out["roc_auc"] = roc_auc(scores, labels)
    out["tar_at_far"] = {}
    out["threshold_at_far"] = {}
    for far in fars:
        tar, t = tar_at_far(scores, labels, far)
        out["tar_at_far"][str(far)] = tar
        out["threshold_at_far"][str(far)] = t
    out["threshold"] = thr
    out["accuracy_global"] = acc
    out["n_pairs"] = len(scores)
    return out


def identification_top1(gallery: np.ndarray, gallery_ids: np.ndarray, probes: np.ndarray,
                        probe_ids: np.ndarray) -> np.ndarray:
    """Closed-set identification: each probe goes to the identity whose mean unit gallery embedding is nearest by
    cosine. Returns one bool per probe (correct or not), so callers can pair and bootstrap per photo."""
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    names = np.unique(gallery_ids)
    gallery = unit(np.asarray(gallery, np.float32))
    means = unit(np.stack([gallery[gallery_ids == n].mean(0) for n in names]))
    predicted = names[np.argmax(unit(np.asarray(probes, np.float32)) @ means.T, axis=1)]
    return predicted == np.asarray(probe_ids)


def all_pairs_thresholds(embeddings: np.ndarray, identities: np.ndarray, fars: tuple[float, ...] = (1e-4, 1e-3, 3e-3),
                         at: float | None = None, block: int = 1024, templates: np.ndarray | None = None) -> dict:
    """Thresholds (and TAR) at each FAR from *every* pair of the images, not only the protocol's pairs.

    Why: LFW View 2 has 3,000 impostor pairs, so its FAR 1e-3 threshold is the 4th-highest of 3,000 scores, a noisy
    tail: the shipped dlib model's, placed there, let through 3.0e-3 of the 29.6 million cross-identity pairs of the
    same 7,701 images. Here a threshold ``t`` admits (``score >= t``, as ``recognize`` compares) at most
    ``floor(far x impostors)`` impostors. Computed a block of rows at a time, keeping only the impostor tail.
    ``at``: also the FAR and TAR at that threshold (the model's own). ``templates``: the same images' enrolled
    templates when the model makes them otherwise than its probes (``vision.embed.template_embedder``): then every
    ordered pair (probe i, template j), i != j, is a trial, as ``recognize`` compares a frame with a gallery.
    """
    ids = np.unique(np.asarray(identities), return_inverse=True)[1]
    n = len(ids)
    counts = np.bincount(ids)
    ordered = templates is not None  # probes against templates: (i, j) and (j, i) are two different comparisons
    other = embeddings if templates is None else templates
    impostors = (n * (n - 1) // 2 - int((counts * (counts - 1) // 2).sum())) * (2 if ordered else 1)
    if impostors < 1:
        raise EdgefaceError("all-pairs thresholds need images of at least two people")
    keep = min(impostors, int(np.ceil(max(fars) * impostors)) + 1)
    tail, genuine, above = np.empty(0, np.float32), [], 0
    columns = np.arange(n)
    for start in range(0, n, block):
        rows = columns[start : start + block]
        scores = embeddings[rows] @ other.T
        upper = columns[None, :] != rows[:, None] if ordered else columns[None, :] > rows[:, None]
        same = ids[rows][:, None] == ids[None, :]
        impostor_scores = scores[upper & ~same]
        genuine.append(scores[upper & same])
        if at is not None:
            above += int((impostor_scores >= at).sum())
        tail = np.concatenate([tail, impostor_scores])
        if len(tail) > keep:
            tail = np.partition(tail, len(tail) - keep)[-keep:]
    tail = np.sort(tail)[::-1]
    same_scores = np.concatenate(genuine)
    out: dict = {"impostor_pairs": impostors, "genuine_pairs": len(same_scores), "threshold_at_far": {},
                 "tar_at_far": {}}
    for far in fars:
        allowed = int(np.floor(far * impostors))
        t = float(np.nextafter(tail[allowed], np.float32(2))) if allowed < len(tail) else float(tail[-1])
        out["threshold_at_far"][str(far)] = t
        # None, not NaN, where no genuine pair is left (every face turned away): --json stays valid JSON
        out["tar_at_far"][str(far)] = float(np.mean(same_scores >= t)) if len(same_scores) else None
    if at is not None:
        out["far_at_model_threshold"] = above / impostors
        out["tar_at_model_threshold"] = float(np.mean(same_scores >= at)) if len(same_scores) else None
    return out
