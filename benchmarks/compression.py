"""Every compression variant of the default model, exported and scored on its .tflite file in one run:
LFW View 2 through `edgeface eval`, latency through `edgeface bench` (1 thread), size raw and gzip.
-> results/compression.json and results/compression.md

    python benchmarks/compression.py [--model ~/.cache/edgeface/default-run/model.keras] [--epochs 2]

The Keras default model comes from benchmarks/train_default.py; fine-tuning uses the prepared CelebA + UTKFace
faces (never LFW View 2 people).
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from common import RESULTS, edgeface_json, save

from edgeface.files import atomic_write
from edgeface.runtime.bench import bench

HOME = Path.home() / ".cache" / "edgeface"


def variants(model: Path, work: Path, data: list[str], epochs: str) -> list[tuple[str, list[list[str]], Path]]:
    """(name, edgeface commands, resulting .tflite) for every variant."""
    calib = [a for d in data for a in ("--calib-data", d)]
    fine = [a for d in data for a in ("--data", d)] + ["--epochs", epochs]

    def exp(src: Path, name: str, mode: str) -> list[str]:
        return ["export", str(src), "-o", str(work / f"{name}.tflite"), "--quantize", mode, *calib]

    k = {name: work / f"{name}.keras" for name in ("mag50", "mag75", "struct", "lowrank", "cluster")}
    return [
        ("float32", [exp(model, "float32", "float32")], work / "float32.tflite"),
        ("float16", [exp(model, "float16", "float16")], work / "float16.tflite"),
        ("dynamic", [exp(model, "dynamic", "dynamic")], work / "dynamic.tflite"),
        ("int8", [exp(model, "int8", "int8")], work / "int8.tflite"),
        ("magnitude 50 % + int8", [["prune", str(model), "-o", str(k["mag50"]), "--sparsity", "0.5", *fine],
                                   exp(k["mag50"], "mag50-int8", "int8")], work / "mag50-int8.tflite"),
        ("magnitude 75 % + int8", [["prune", str(model), "-o", str(k["mag75"]), "--sparsity", "0.75", *fine],
                                   exp(k["mag75"], "mag75-int8", "int8")], work / "mag75-int8.tflite"),
        ("structured 55 % channels + float32", [["prune", str(model), "-o", str(k["struct"]), "--structured",
                                                 "--ratio", "0.55", *fine],
                                                exp(k["struct"], "struct-float32", "float32")],
         work / "struct-float32.tflite"),
        ("structured 55 % channels + int8", [exp(k["struct"], "struct-int8", "int8")], work / "struct-int8.tflite"),
        ("low-rank (energy 0.9) + int8", [["lowrank", str(model), "-o", str(k["lowrank"]), "--energy", "0.9", *fine],
                                          exp(k["lowrank"], "lowrank-int8", "int8")], work / "lowrank-int8.tflite"),
        ("QAT int8", [["quantize", str(model), "-o", str(work / "qat-int8.tflite"), "--mode", "qat", *fine, *calib]],
         work / "qat-int8.tflite"),
        ("clustered 16 + int8", [["cluster", str(model), "-o", str(k["cluster"]), "--clusters", "16", *fine],
                                 exp(k["cluster"], "cluster-int8", "int8")], work / "cluster-int8.tflite"),
    ]


def markdown(rows: list[dict]) -> str:
    head = ("| variant | size KB | gzip KB | params | MFLOPs | p50 ms (1 thread) | speed-up | LFW View 2 | "
            "delta pp | TAR@FAR1e-3 |\n|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['variant']} | {r['size_bytes'] / 1024:.0f} | {r['gzip_bytes'] / 1024:.0f} | {r['params']:,} | "
        f"{r['flops'] / 1e6:.0f} | {r['p50_ms']:.3f} | {r['speedup_vs_float32']:.2f}x | "
        f"{100 * r['accuracy']:.2f} +- {100 * r['accuracy_se']:.2f} | {r['delta_pp']:+.2f} | "
        f"{100 * r['tar_at_far_1e-3']:.2f} |\n" for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(HOME / "default-run" / "model.keras"))
    parser.add_argument("--work", default=str(HOME / "compression"))
    parser.add_argument("--data", nargs="+",
                        default=[str(HOME / "prepared" / "celeba"), str(HOME / "prepared" / "utk")])
    parser.add_argument("--epochs", default="2")
    parser.add_argument("--lfw-dir", default="../shared/data/lfw/lfw-deepfunneled")
    parser.add_argument("--pairs", default="../shared/data/lfw/pairs.txt")
    args = parser.parse_args()
    started = time.time()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    plan = variants(Path(args.model), work, args.data, args.epochs)
    built = {}
    for name, commands, tflite in plan:
        t = time.time()
        if not tflite.exists():  # resumable: finished variants are not redone
            for cmd in commands:
                edgeface_json(*cmd)
        built[name] = {"path": tflite, "build_seconds": round(time.time() - t, 1)}
    timing = {Path(r["model"]).name: r for r in bench([str(b["path"]) for b in built.values()], [1], runs=200)}
    rows = []
    for name, info in built.items():
        report = edgeface_json("eval", str(info["path"]), "--lfw-dir", args.lfw_dir, "--pairs", args.pairs)
        t = timing[info["path"].name]
        content = info["path"].read_bytes()
        rows.append({"variant": name, "file": info["path"].name, "size_bytes": len(content),
                     "gzip_bytes": len(gzip.compress(content, 9)), "params": manifest_params(info["path"]),
                     "flops": t["flops"], "p50_ms": t["p50_ms"], "accuracy": report["accuracy"],
                     "accuracy_se": report["accuracy_se"], "roc_auc": report["roc_auc"],
                     "tar_at_far_1e-3": report["tar_at_far"]["0.001"], "build_seconds": info["build_seconds"]})
    base = rows[0]
    for r in rows:
        r["speedup_vs_float32"] = base["p50_ms"] / r["p50_ms"]
        r["delta_pp"] = 100 * (r["accuracy"] - base["accuracy"])
        r["size_ratio"] = r["size_bytes"] / base["size_bytes"]
        r["gzip_ratio"] = r["gzip_bytes"] / base["gzip_bytes"]
    table = markdown(rows)
    print(table)
    with atomic_write(RESULTS / "compression.md", "w") as handle:
        handle.write(table)
    save("compression.json", {"model": args.model, "fine_tune_epochs": float(args.epochs), "results": rows}, started)


def manifest_params(path: Path) -> int:
    return int(json.loads(path.with_suffix(".json").read_text()).get("params") or 0)


if __name__ == "__main__":
    main()
