"""Every compression variant of the default model through `edgeface compare`, in one run: each exported, scored
on LFW View 2 from its .tflite and timed with the light runtime (1 thread).
-> results/compression.json, results/compression.md, results/compare.json, results/report.md, results/pareto.png

    python benchmarks/compression.py [--model ~/.cache/edgeface/stage3/model.keras] [--epochs 1]
    python benchmarks/compression.py --model ~/.cache/edgeface/dlib-ft2/model.keras --techniques quantize \
        --name compression_dlib --out ~/.cache/edgeface/compare-dlib \
        --data ~/.cache/edgeface/prepared-dlib/celeba ~/.cache/edgeface/prepared-dlib/utkface-subset

The Keras default model comes from benchmarks/recipes/train_default.py (stage 3: `--run stage3`); fine-tuning and
calibration use the prepared CelebA + UTKFace faces in YuNet crops, as the default was trained (no LFW View 2
person).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from common import RESULTS, edgeface_json, save

HOME = Path.home() / ".cache" / "edgeface"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(HOME / "stage3" / "model.keras"))
    parser.add_argument("--out", default=str(HOME / "compare-3"))
    parser.add_argument("--data", nargs="+", default=[str(HOME / "prepared-yunet" / "celeba"),
                                                      str(HOME / "prepared-yunet" / "utkface-subset")])
    parser.add_argument("--epochs", default="2")
    parser.add_argument("--techniques", default="quantize,prune,structured,lowrank,qat,cluster")
    parser.add_argument("--name", default="compression",
                        help="results/<name>.json and .md (the default name also refreshes report.md, compare.json "
                             "and pareto.png)")
    parser.add_argument("--lfw-dir", default="../shared/data/lfw/lfw-deepfunneled")
    parser.add_argument("--pairs", default="../shared/data/lfw/pairs.txt")
    args = parser.parse_args()
    started = time.time()
    result = edgeface_json("compare", args.model, *[a for d in args.data for a in ("--data", d)], "--lfw-dir",
                           args.lfw_dir, "--pairs", args.pairs, "--out", args.out, "--epochs", args.epochs,
                           "--techniques", args.techniques)
    out = Path(args.out)
    shutil.copyfile(out / "report.md", RESULTS / f"{args.name}.md")
    shutil.copyfile(out / "pareto.png", RESULTS / ("pareto.png" if args.name == "compression" else f"{args.name}.png"))
    if args.name == "compression":
        shutil.copyfile(out / "report.md", RESULTS / "report.md")
    rows = result["results"]
    by = {r["variant"]: r for r in rows}
    int8 = [r for r in rows if r["quantize"] == "int8"]
    best_int8 = max(int8, key=lambda r: r["accuracy"])
    structured = [r for r in rows if r["technique"] == "structured" and r["quantize"] == "float32"]
    pruned_int8 = [r for r in rows if r["technique"] == "prune"]
    targets = {
        "best int8 within 0.3 pp of float32": {"value_pp": best_int8["delta_pp"], "met": best_int8["delta_pp"] >= -0.3},
        "int8 file <= 1/4 of float32": {"value": by["int8"]["size_ratio"], "met": by["int8"]["size_ratio"] <= 0.25},
        "pruned+int8 gzip <= 1/8 of float32 gzip": {
            "value": min(r["gzip_ratio"] for r in pruned_int8) if pruned_int8 else None,
            "met": bool(pruned_int8) and min(r["gzip_ratio"] for r in pruned_int8) <= 0.125},
        "structured: >= 50 % FLOPs removed, <= 0.5 pp loss, >= 1.6x faster": {
            "flops_removed": 1 - structured[0]["flops"] / rows[0]["flops"] if structured else None,
            "delta_pp": structured[0]["delta_pp"] if structured else None,
            "speedup": structured[0]["speedup_vs_float32"] if structured else None,
            "met": bool(structured) and 1 - structured[0]["flops"] / rows[0]["flops"] >= 0.5
            and structured[0]["delta_pp"] >= -0.5 and structured[0]["speedup_vs_float32"] >= 1.6},
    }
    save(f"{args.name}.json", {"model": args.model, "fine_tune_epochs": float(args.epochs), "results": rows,
                              "targets": targets}, started)
    if args.name == "compression":
        save("compare.json", {"model": args.model, **result}, started)


if __name__ == "__main__":
    main()
