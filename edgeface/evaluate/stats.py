"""Paired statistics for "did this change accuracy?": the same test photos scored by two models.

Per-photo differences (1 = only the variant was right, -1 = only the reference, 0 = both or neither), averaged
over repeated runs (seeds) of each photo, are what the two tests below resample: photos are the unit of sampling, so
the seeds' runs of one photo stay together. numpy only, seeded, so a report reproduces exactly.
"""

from __future__ import annotations

import numpy as np


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of ``values`` (sample SD / sqrt(n)): the +- of a 10-fold LFW score, or of a
    per-fold paired difference."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / np.sqrt(len(values)))


def photo_differences(variant: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(seeds, photos) correctness of two models -> one mean difference per photo (in accuracy units)."""
    variant, reference = np.atleast_2d(variant).astype(float), np.atleast_2d(reference).astype(float)
    if variant.shape != reference.shape:
        raise ValueError(f"paired runs must score the same photos: {variant.shape} vs {reference.shape}")
    return (variant - reference).mean(axis=0)


def bootstrap_ci(differences: np.ndarray, level: float = 0.95, resamples: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean per-photo difference."""
    rng = np.random.default_rng(seed)
    n = len(differences)
    means = np.array([differences[rng.integers(0, n, n)].mean() for _ in range(resamples)])
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def sign_flip_p(differences: np.ndarray, resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired permutation test: under "no effect" each photo's difference is as likely negated, so the
    p-value is how often randomly flipped signs give a mean at least as far from zero as the observed one."""
    rng = np.random.default_rng(seed)
    observed = abs(differences.mean())
    signs = rng.choice((-1.0, 1.0), size=(resamples, len(differences)))
    flipped = np.abs((signs * differences).mean(axis=1))
    return float((1 + np.sum(flipped >= observed - 1e-12)) / (resamples + 1))
