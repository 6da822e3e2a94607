"""What a compressed file cost on LFW View 2, paired: every file is scored on the same 6,000 pairs and 10 folds,
and each one after the first is reported as its per-fold accuracy minus the first file's (mean +- standard error
over the folds, and how many folds got worse). Why paired: two files' own +- 0.4 pp standard errors overlap for
changes of half a point, but the fold-to-fold spread of their *difference* is far smaller, so the pairing says
whether a half-point loss is real.  -> results/<name>.json

    python benchmarks/lfw_paired.py UNPRUNED.tflite PRUNED.tflite [MORE.tflite ...] --name structured_paired
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import LFW, PAIRS, save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", help="the file every other one is compared with")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--name", default="lfw_paired", help="results/<name>.json")
    args = parser.parse_args()
    started = time.time()

    from edgeface.evaluate.lfw import evaluate_lfw
    from edgeface.evaluate.stats import standard_error
    from edgeface.vision.embed import TFLiteEmbedder

    def folds(path: str) -> np.ndarray:
        return 100 * np.array(evaluate_lfw(TFLiteEmbedder(Path(path), threads=2), LFW, PAIRS)["fold_accuracy"])

    reference = folds(args.reference)
    rows = []
    for path in args.files:
        accuracy = folds(path)
        change = accuracy - reference
        rows.append({"file": path, "lfw_pp": float(accuracy.mean()), "change_pp": float(change.mean()),
                     "change_se_pp": standard_error(change),
                     "folds_worse": int((change < 0).sum()), "folds": len(change)})
        print(f"{path}: {rows[-1]['change_pp']:+.2f} +- {rows[-1]['change_se_pp']:.2f} pp paired "
              f"({rows[-1]['folds_worse']}/{len(change)} folds worse)", flush=True)
    save(f"{args.name}.json", {"reference": {"file": args.reference, "lfw_pp": float(reference.mean())},
                               "compared": rows}, started)


if __name__ == "__main__":
    main()
