"""The verification metrics on synthetic scores whose answers are known."""

import numpy as np
import pytest

from edgeface.errors import EdgefaceError
from edgeface.evaluate.metrics import (
    best_threshold,
    kfold_accuracy,
    roc_auc,
    tar_at_far,
    threshold_at_far,
    verification_report,
)


def test_separable_scores_give_perfect_accuracy_and_auc():
    labels = np.array([1] * 50 + [0] * 50)
    scores = np.where(labels == 1, 0.8, 0.2) + np.linspace(0, 0.1, 100)
    folds = np.arange(100) % 10
    report = verification_report(scores, labels, folds)
    assert report["accuracy"] == 1.0
    assert report["accuracy_se"] == 0.0
    assert report["roc_auc"] == 1.0
    assert 0.3 < report["threshold"] < 0.8


def test_best_threshold_on_a_hand_worked_case():
    # sorted: 0.1(n) 0.2(n) 0.3(p) 0.4(n) 0.5(p) 0.6(p): best cut between 0.2 and 0.3 -> 5/6 correct
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    labels = np.array([0, 0, 1, 0, 1, 1])
    thr, acc = best_threshold(scores, labels)
    assert thr == pytest.approx(0.25)
    assert acc == pytest.approx(5 / 6)


def test_auc_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=300), 1)  # many ties
    labels = rng.random(300) < 0.4
    scores[labels] += 0.5
    pos, neg = scores[labels], scores[~labels]
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert roc_auc(scores, labels) == pytest.approx(brute)


def test_tar_at_far_counts_allowed_impostors():
    impostors = np.arange(1000) / 1000.0  # 0.000 .. 0.999
    genuine = np.array([0.9975, 0.9985, 0.5])
    scores = np.concatenate([genuine, impostors])
    labels = np.concatenate([np.ones(3), np.zeros(1000)])
    thr = threshold_at_far(scores, labels, 1e-3)  # 1 impostor may pass: threshold at the 2nd highest
    assert thr == pytest.approx(0.998)
    assert np.sum(impostors > thr) == 1
    tar, _ = tar_at_far(scores, labels, 1e-3)
    assert tar == pytest.approx(1 / 3)  # only 0.9985 is above 0.998
    tar2, _ = tar_at_far(scores, labels, 1e-2)
    assert tar2 == pytest.approx(2 / 3)


def test_kfold_threshold_is_chosen_without_the_test_fold():
    # fold 0 would need a different threshold than the others: its accuracy must suffer
    scores = np.array([0.9, 0.1] * 9 + [0.45, 0.55])
    labels = np.array([1, 0] * 9 + [1, 0])
    folds = np.repeat(np.arange(10), 2)
    res = kfold_accuracy(scores, labels, folds)
    assert res["fold_accuracy"][-1] == 0.0
    assert res["accuracy"] == pytest.approx(0.9)
    assert res["accuracy_se"] == pytest.approx(np.std([1] * 9 + [0], ddof=1) / np.sqrt(10))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(EdgefaceError, match="both genuine and impostor"):
        roc_auc(np.ones(4), np.ones(4))
    with pytest.raises(EdgefaceError, match="NaN"):
        best_threshold(np.array([0.1, np.nan]), np.array([1, 0]))


def test_identification_goes_to_the_nearest_identity_mean():
    from edgeface.evaluate.metrics import identification_top1

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16))
    ids = np.repeat(np.arange(5), 4)
    gallery = centres[ids] + 0.1 * rng.normal(size=(20, 16))
    probes = centres[[0, 1, 2, 3, 4]] + 0.1 * rng.normal(size=(5, 16))
    truth = np.array([0, 1, 2, 3, 2])  # the last probe is really person 4: it must be counted wrong
    assert identification_top1(gallery, ids, probes, truth).tolist() == [True, True, True, True, False]


def test_paired_statistics_find_a_real_difference_and_no_phantom_one():
    from edgeface.evaluate.stats import bootstrap_ci, photo_differences, sign_flip_p

    rng = np.random.default_rng(1)
    reference = rng.random((3, 2000)) < 0.7
    better = reference | (rng.random((3, 2000)) < 0.2)  # fixes about 6 % of photos, breaks none
    diffs = photo_differences(better, reference)
    low, high = bootstrap_ci(diffs)
    assert 0 < low < diffs.mean() < high and sign_flip_p(diffs) < 0.001
    same = photo_differences(rng.random((3, 2000)) < 0.7, rng.random((3, 2000)) < 0.7)  # two coins, no effect
    low, high = bootstrap_ci(same)
    assert low < 0 < high and sign_flip_p(same) > 0.01
    with pytest.raises(ValueError, match="same photos"):
        photo_differences(better, reference[:, :10])
