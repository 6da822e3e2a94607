"""The default model, the seed's VGG16 baseline and the dlib peer, measured in one run on LFW View 2 through
`edgeface eval` on each exported float .tflite (dlib: its own pipeline) -> results/models.json.

    python benchmarks/recipes/seed_study.py --stage baseline   # the vgg16 baseline: ~/.cache/edgeface/seed-study
    python benchmarks/models_table.py [--reuse-dlib]

dlib takes about 30 minutes of CPU on View 2 when its embedding cache is cold; `--reuse-dlib` keeps the dlib row of
the previous results/models.json (marked with the date it was measured) instead of recomputing it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import RESULTS, edgeface_json, save

from edgeface.default_model import default_model_path

HOME = Path.home() / ".cache" / "edgeface"
KEYS = ("accuracy", "accuracy_se", "roc_auc", "tar_at_far", "threshold_at_far", "n_detect_failed", "seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vgg16", default=str(HOME / "seed-study" / "baseline" / "model.keras"))
    parser.add_argument("--lfw-dir", default="../shared/data/lfw/lfw-deepfunneled")
    parser.add_argument("--pairs", default="../shared/data/lfw/pairs.txt")
    parser.add_argument("--reuse-dlib", action="store_true", help="keep the dlib row of the previous models.json")
    args = parser.parse_args()
    reused = None
    if args.reuse_dlib:
        old = json.loads((RESULTS / "models.json").read_text())
        reused = {**next(r for r in old["results"] if r["file"] == "dlib"), "measured": old["date"]}
    started = time.time()
    vgg_tflite = Path(args.vgg16).with_name("vgg16-float32.tflite")
    edgeface_json("export", args.vgg16, "-o", str(vgg_tflite))
    rows = []
    for name, model in (("edgeface default (float32)", str(default_model_path("edgeface-default-float32.tflite"))),
                        ("edgeface default (int8)", str(default_model_path())),
                        ("vgg16 baseline (float32)", str(vgg_tflite)), ("dlib ResNet peer", "dlib")):
        if model == "dlib" and reused:
            rows.append(reused)
            continue
        report = edgeface_json("eval", model, "--lfw-dir", args.lfw_dir, "--pairs", args.pairs)
        if model == "dlib":
            size = {"params": None, "flops": None,
                    "note": "dlib_face_recognition_resnet_model_v1: ResNet-29, 150x150 input, 22.5 MB of float "
                            "weights (about 5.6 M parameters); not a TFLite file, so FLOPs are not counted here"}
        else:
            manifest = json.loads(Path(model).with_suffix(".json").read_text())
            size = {"params": manifest["params"], "flops": manifest["flops"], "file_bytes": Path(model).stat().st_size}
        rows.append({"model": name, "file": model, **size, **{k: report[k] for k in KEYS}})
        print(f"{name}: {100 * report['accuracy']:.2f} % +- {100 * report['accuracy_se']:.2f}")
    save("models.json", {"caveat": "CelebA and LFW both hold celebrities; a few training identities may also "
                                   "appear in LFW View 2", "results": rows}, started)


if __name__ == "__main__":
    main()
