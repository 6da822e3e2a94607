"""LFW View 2 under YuNet and BlazeFace alignment, in one run: the MobileFaceNet float peer, the default int8
model and dlib, each through `edgeface eval --detector ...` -> results/lfw_alignment.json.

YuNet aligns all five ArcFace template points from its own landmarks; BlazeFace gives eyes, nose tip and a mouth
centre (four points). The stage-2 default model (this result's) was trained on BlazeFace crops, so its manifest
said ``blazeface-4pt`` and under YuNet edgeface took the landmarks from BlazeFace run on each YuNet face (today's
shipped models are aligned from YuNet's own points); the extra row "YuNet's own 5
points" (a copy of the model whose manifest does not say so) shows what ignoring that would cost.

    python benchmarks/archive/lfw_alignment.py [--skip-dlib]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import PEER_FLAGS, edgeface_json, save

from edgeface.default_model import default_model_path
from edgeface.manifest import load_manifest, write_model

KEYS = ("accuracy", "accuracy_se", "roc_auc", "tar_at_far", "threshold_at_far", "n_detect_failed", "seconds",
        "alignment")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", default="../shared/data/lfw/lfw-deepfunneled")
    parser.add_argument("--pairs", default="../shared/data/lfw/pairs.txt")
    parser.add_argument("--peers", default="../shared/peers")
    parser.add_argument("--skip-dlib", action="store_true")
    args = parser.parse_args()
    started = time.time()
    plain = Path(tempfile.mkdtemp()) / "edgeface-default-5pt.tflite"
    manifest = load_manifest(default_model_path())
    manifest.alignment = None
    write_model(plain, default_model_path().read_bytes(), manifest)
    models = {"mobilefacenet_float32 (peer)": ([str(Path(args.peers) / "mobilefacenet_float32.tflite"), *PEER_FLAGS],
                                               True),
              "edgeface default int8": ([str(default_model_path())], True),
              "edgeface default int8, YuNet's own 5 points": ([str(plain)], False)}
    if not args.skip_dlib:
        models["dlib ResNet (peer)"] = (["dlib"], True)
    rows = []
    for label, (model, both) in models.items():
        row = {"model": label}
        for detector in ("yunet", "blazeface") if both else ("yunet",):
            report = edgeface_json("eval", *model, "--lfw-dir", args.lfw_dir, "--pairs", args.pairs,
                                   "--detector", detector)
            row[detector] = {k: report[k] for k in KEYS}
            print(f"{label} / {detector}: {100 * report['accuracy']:.2f} % +- {100 * report['accuracy_se']:.2f}, "
                  f"TAR@FAR1e-3 {100 * report['tar_at_far']['0.001']:.1f} %", flush=True)
        if both:
            row["yunet_minus_blazeface_pp"] = round(100 * (row["yunet"]["accuracy"] - row["blazeface"]["accuracy"]),
                                                    2)
        rows.append(row)
    save("lfw_alignment.json", {"results": rows, "target": {"mobilefacenet_float32 (peer) yunet": 0.9910}}, started)


if __name__ == "__main__":
    main()
