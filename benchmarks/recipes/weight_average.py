"""Average a fine-tuned dlib network's weights with the port it started from (WiSE-FT), then export and score it.

    python benchmarks/recipes/weight_average.py --tuned ~/.cache/edgeface/dlib-robust-tail/model.keras \
        --alpha 0.3 --run dlib-robust-tail-wise30
    python benchmarks/port_robustness.py --name robust-tail-wise30 \
        --fine-tuned ~/.cache/edgeface/dlib-robust-tail-wise30-flip/edgeface-int8.tflite
                                    # issue #40's default; --alpha 0.5 --run dlib-robust-tail-wise was halfway
    python benchmarks/recipes/dlib_default.py --export-only --run dlib-robust-tail-wise30 --templates flip \
        --model ~/.cache/edgeface/dlib-robust-tail-wise30/model.keras --install     # shipped as the default

Why: the harsh-light fine-tuning (issue #40, ``dlib_default.py --run dlib-robust-tail``) kept more genuine matches
under harsh light than the port but fewer on clean faces. Both networks start from the same weights, so the straight
line between them stays a working network; a point on it often keeps what the start knew and part of what the fine-
tuning learned (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"). No training: one export and its
evaluation.

1. ``(1 - alpha) x port + alpha x tuned``, layer by layer, into <work>/<run>/model.keras with the tuned manifest's
   provenance chain plus this step
2. ``dlib_default.py --export-only --flip --run <run>``: flip-averaged float32 and int8 files and LFW View 2, as the
   port and the fine-tuned runs were exported (-> results/default_model_<run>-flip.json)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from edgeface.manifest import load_manifest
from edgeface.training.train.keras_io import load_keras, save_keras


def average(port: Path, tuned: Path, alpha: float, out: Path) -> Path:
    """The weights on the line from the port (alpha 0) to the fine-tuned network (alpha 1), saved with provenance."""
    start, end = load_keras(port), load_keras(tuned)
    ours, theirs = start.get_weights(), end.get_weights()
    if [w.shape for w in ours] != [w.shape for w in theirs]:
        raise SystemExit(f"{tuned} is not the same network as {port}: its weights have other shapes")
    end.set_weights([(1.0 - alpha) * a + alpha * b for a, b in zip(ours, theirs, strict=True)])
    manifest = load_manifest(tuned)
    if manifest is None:
        raise SystemExit(f"{tuned} has no manifest beside it")
    manifest.chain.append({"step": "weight-average", "alpha": alpha, "with": str(port)})
    return save_keras(end, out, manifest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "edgeface")
    parser.add_argument("--tuned", type=Path, required=True, help="the fine-tuned model.keras")
    parser.add_argument("--port", type=Path, help="the start (default: <work>/dlib-base/model.keras)")
    parser.add_argument("--alpha", type=float, default=0.5, help="0: the port, 1: the fine-tuned network")
    parser.add_argument("--run", required=True, help="run folder under --work")
    args = parser.parse_args()
    if not 0.0 <= args.alpha <= 1.0 or not np.isfinite(args.alpha):
        parser.error("--alpha must be between 0 and 1")
    model = average(args.port or args.work / "dlib-base" / "model.keras", args.tuned, args.alpha,
                    args.work / args.run / "model.keras")
    subprocess.run([sys.executable, str(Path(__file__).with_name("dlib_default.py")), "--work", str(args.work),
                    "--export-only", "--flip", "--run", args.run, "--model", str(model), "--no-hold-conditions"],
                   check=True)


if __name__ == "__main__":
    main()
