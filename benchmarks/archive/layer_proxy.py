"""Is the per-layer error report a proxy for LFW? The layers it ranks most damaged by int8, kept in float one at a
time, must give back more LFW accuracy than the layers it ranks least damaged.

    python benchmarks/archive/layer_proxy.py [--model peer|default] [--each 5]
-> results/layer_proxy_<model>.json

For the chosen float model: quantize to int8 (the LiteRT quantizer, calibrated on CelebA photos), rank the weighted
layers by the dB each one loses itself (``layer_errors``), then for the ``--each`` top and bottom layers quantize
again with only that layer in float and score LFW View 2 on the written file. Reports each layer's recovery
(accuracy with it in float minus all-int8) beside its proxy score, and the rank correlation of the two.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import LFW, PAIRS, PEER_FLAGS, SHARED, save

from edgeface.default_model import default_model_path
from edgeface.manifest import InputSpec, load_manifest
from edgeface.quantize.tflite_quantize import (
    Overrides,
    calibration_crops,
    layer_errors,
    lfw_scorer,
    prepare_float,
    quantize_float,
)


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("peer", "default"), default="peer")
    parser.add_argument("--each", type=int, default=5, help="layers taken from the top and from the bottom")
    parser.add_argument("--calib", type=int, default=200)
    args = parser.parse_args()
    started = time.time()
    if args.model == "peer":
        path = SHARED / "peers" / "mobilefacenet_float32.tflite"
        spec = InputSpec(mean=float(PEER_FLAGS[1]), scale=float(PEER_FLAGS[3]), channels=PEER_FLAGS[5])
        alignment = None
    else:
        path = default_model_path().with_name("edgeface-default-float32.tflite")
        manifest = load_manifest(path)
        spec, alignment = manifest.input, manifest.alignment
    content, _ = prepare_float(path.read_bytes())
    faces = calibration_crops([SHARED / "data" / "celeba-subset"], args.calib, alignment)
    score = lfw_scorer(LFW, PAIRS, spec, alignment)
    base = quantize_float(content, "int8", spec, faces)
    errors = layer_errors(content, base, spec, faces[:16])
    floor = score(base)["accuracy"]
    chosen = errors[: args.each] + errors[-args.each :]
    rows = []
    for r in chosen:
        mixed = quantize_float(content, "int8", spec, faces, Overrides(keep_float=[r["name"]]))
        accuracy = score(mixed)["accuracy"]
        rows.append({**r, "lfw_with_layer_float": accuracy, "recovery_pp": 100 * (accuracy - floor)})
        print(f"{r['name'][:50]:50s} lost {r['introduced_db']:.2f} dB -> recovery {rows[-1]['recovery_pp']:+.2f} pp",
              flush=True)
    top, bottom = rows[: args.each], rows[args.each :]
    result = {
        "model": str(path), "float_lfw": score(content)["accuracy"], "int8_lfw": floor, "layers_ranked": len(errors),
        "top_by_proxy_mean_recovery_pp": float(np.mean([r["recovery_pp"] for r in top])),
        "bottom_by_proxy_mean_recovery_pp": float(np.mean([r["recovery_pp"] for r in bottom])),
        "spearman_proxy_vs_recovery": spearman([r["introduced_db"] for r in rows], [r["recovery_pp"] for r in rows]),
        "layers": rows,
    }
    save(f"layer_proxy_{args.model}.json", result, started)
    print({k: v for k, v in result.items() if k != "layers"})


if __name__ == "__main__":
    main()
