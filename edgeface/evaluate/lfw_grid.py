"""Several models, camera conditions and detectors on LFW View 2 in one run (``edgeface eval A B --condition
plain,grey --detector yunet,blazeface --paired A``): one row per combination, each from the same 6,000 pairs.

``paired``: every other model's per-fold accuracy minus the reference's, under the same condition and detector
(mean +- standard error over the 10 folds, and how many folds got worse). Why paired: two files' own +- 0.4 pp
overlap for changes of half a point, but the fold-to-fold spread of their difference is far smaller, so the pairing
says whether a half-point loss is real.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.evaluate.lfw import evaluate_lfw
from edgeface.evaluate.stats import standard_error
from edgeface.vision.condition_names import CONDITIONS
from edgeface.vision.detector_options import DEFAULT_DETECT_SIZE, DEFAULT_DETECTOR, DetectorName
from edgeface.vision.embed import load_embedder


def parse_list(text: str, what: str, allowed: Sequence[str]) -> list[str]:
    """``"plain,grey"`` -> ["plain", "grey"], each checked against ``allowed``, no repeats."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise EdgefaceError(f"--{what} needs at least one name: {', '.join(allowed)}")
    for name in names:
        if name not in allowed:
            raise EdgefaceError(f"unknown {what} {name!r}; choose from {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise EdgefaceError(f"--{what} names one twice: {text}")
    return names


def parse_conditions(text: str) -> list[str]:
    return parse_list(text, "condition", list(CONDITIONS))


def parse_detectors(text: str) -> list[str]:
    return parse_list(text, "detector", [d.value for d in DetectorName])


def evaluate_grid(models: Sequence[str | Path | None], lfw_dir: str | Path, pairs: str | Path,
                  conditions: Sequence[str] = ("plain",), detectors: Sequence[str] = (DEFAULT_DETECTOR,),
                  paired: str | Path | None = None, workers: int = 2, detect_size: int = DEFAULT_DETECT_SIZE,
                  flip: bool = False, mean: float | None = None, scale: float | None = None,
                  channels: str | None = None) -> list[dict]:
    """One ``evaluate_lfw`` report per model x detector x condition, in that order but the reference (among
    ``models`` or not) first, each other one with ``paired`` against it when one is given."""
    order = list(models) if paired is None else [paired, *(m for m in models if m != paired)]
    reference: dict[tuple[str, str], np.ndarray] = {}
    rows = []
    for model in order:
        embedder = load_embedder(model, threads=workers, flip=flip, mean=mean, scale=scale, channels=channels)
        for detector in detectors:
            for condition in conditions:
                report = evaluate_lfw(embedder, lfw_dir, pairs, workers=workers, detector=detector,
                                      detect_size=detect_size, condition=condition)
                report["model_arg"] = str(model) if model is not None else "default"
                folds = 100 * np.asarray(report["fold_accuracy"], float)
                if paired is not None and model == paired:
                    reference[detector, condition] = folds
                elif paired is not None:
                    change = folds - reference[detector, condition]
                    report["paired"] = {"reference": str(paired), "change_pp": float(change.mean()),
                                        "change_se_pp": standard_error(change),
                                        "folds_worse": int((change < 0).sum()), "folds": len(change)}
                rows.append(report)
    return rows
