"""LFW View 2 accuracy of the MobileFaceNet peers through `edgeface eval` -> results/peers_lfw.json.

Reference (an independent dlib HOG + 68-landmark pipeline): float32 99.08 % +- 0.14, uint8 98.25 % +- 0.20.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import PEER_FLAGS, edgeface_json, save

REFERENCE = {"mobilefacenet_float32.tflite": (0.9908, 0.0014), "mobilefacenet_uint8.tflite": (0.9825, 0.0020)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lfw-dir", default="../shared/data/lfw/lfw-deepfunneled")
    parser.add_argument("--pairs", default="../shared/data/lfw/pairs.txt")
    parser.add_argument("--peers", default="../shared/peers")
    args = parser.parse_args()
    started = time.time()
    rows = []
    for name, (ref, ref_se) in REFERENCE.items():
        report = edgeface_json("eval", str(Path(args.peers) / name), "--lfw-dir", args.lfw_dir, "--pairs", args.pairs,
                               *PEER_FLAGS)
        rows.append({"model": name, "reference_dlib_pipeline": {"accuracy": ref, "accuracy_se": ref_se},
                     "delta_vs_reference_pp": round(100 * (report["accuracy"] - ref), 2), **report})
        print(f"{name}: {100 * report['accuracy']:.2f} % +- {100 * report['accuracy_se']:.2f} "
              f"(reference {100 * ref:.2f}) in {report['seconds']} s")
    save("peers_lfw.json", {"results": rows}, started)


if __name__ == "__main__":
    main()
