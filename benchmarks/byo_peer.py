"""Bring your own model: the MobileFaceNet float peer and edgeface's own float model, imported and quantized by
edgeface under each LiteRT-quantizer recipe, beside the peer authors' uint8 file and edgeface's shipped int8 file.

    python benchmarks/byo_peer.py [--calib 200] [--rounds 3] [--int16]
-> results/byo_peer.json

Every accuracy is LFW View 2 (10-fold, mean +- SE; AUC; TAR at FAR 1e-3) from the exported file itself; every
latency is p50 on one thread, every file of a model timed side by side in each of ``--rounds`` rounds (median).
Quantized copies of the peer go to ~/.cache/edgeface/byo, never into the repository; nothing learns from the peer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from common import CELEBA, LFW, PAIRS, PEER_FLAGS, SHARED, save

from edgeface.default_model import default_model_path
from edgeface.manifest import InputSpec, Manifest, load_manifest, write_model
from edgeface.quantize.tflite_quantize import (
    calibration_crops,
    lfw_scorer,
    prepare_float,
    quantize_float,
    within_budget,
)
from edgeface.runtime.bench import bench
from edgeface.training.model_import import import_model

OUT = Path.home() / ".cache" / "edgeface" / "byo"


def lfw_row(report: dict) -> dict:
    return {"accuracy": report["accuracy"], "accuracy_se": report["accuracy_se"], "roc_auc": report["roc_auc"],
            "tar_at_far_1e-3": report["tar_at_far"]["0.001"]}


def variants(name: str, float_file: Path, spec: InputSpec, alignment: str | None, reference: tuple[str, Path],
             calib: int, max_drop: float, int16: bool) -> dict:
    """Every recipe of one float model, written to OUT, scored on LFW, then timed side by side. ``int16``: also
    int16x8, which XNNPACK does not run (the reference kernels take ~280 ms a face: 36 min for one LFW pass)."""
    content = float_file.read_bytes()
    faces = calibration_crops([CELEBA], calib, alignment)
    score = lfw_scorer(LFW, PAIRS, spec, alignment)
    plain, _ = prepare_float(content, rewrite=False)
    friendly, rewrites = prepare_float(content, rewrite=True)
    files: dict[str, Path] = {"float32": float_file, reference[0]: reference[1]}
    built = {
        "dynamic (int8 weights, float activations)": quantize_float(friendly, "dynamic", spec, None),
        "weight-only int8": quantize_float(friendly, "weight-only", spec, None),
        "int8, no rewrite": quantize_float(plain, "int8", spec, faces, rewrite=False),
        "int8": quantize_float(friendly, "int8", spec, faces),
    }
    if int16:
        built["int16x8"] = quantize_float(friendly, "int16x8", spec, faces)
    manifest = Manifest(input=spec, alignment=alignment)
    for label, data in built.items():
        path = OUT / f"{name}-{label.split(' ')[0].replace(',', '')}{'-plain' if 'no rewrite' in label else ''}.tflite"
        files[label] = write_model(path, data, manifest)
    rows = {label: {"file": str(path), "size_bytes": path.stat().st_size} for label, path in files.items()}
    for label, path in files.items():
        print(f"[{name}] LFW {label}", file=sys.stderr, flush=True)
        rows[label]["lfw"] = lfw_row(score(path.read_bytes()))
    drop = 100 * (rows["float32"]["lfw"]["accuracy"] - rows["int8"]["lfw"]["accuracy"])
    search = None
    if drop > max_drop:
        print(f"[{name}] int8 lost {drop:.2f} pp: mixed precision within {max_drop} pp", file=sys.stderr)
        mixed, search = within_budget(friendly, "int8", spec, faces, score, max_drop)
        path = write_model(OUT / f"{name}-mixed.tflite", mixed, manifest)
        label = f"int8 + float layers (--max-drop {max_drop})"
        files[label] = path
        rows[label] = {"file": str(path), "size_bytes": path.stat().st_size, "lfw": lfw_row(search["steps"][-1]["lfw"]),
                       "kept_float": search["steps"][-1]["kept_float"]}
        for step in search["steps"]:
            step.pop("lfw", None)
    return {"rows": rows, "files": files, "rewrites": rewrites, "mixed_search": search}


def time_side_by_side(files: dict[str, Path], rounds: int) -> dict[str, float]:
    labels = list(files)
    p50: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(rounds):
        order = labels if r % 2 == 0 else labels[::-1]
        for row in bench([str(files[label]) for label in order], [1], runs=300, warmup=30, roofline=False):
            p50[order[[str(files[label]) for label in order].index(row["model"])]].append(row["p50_ms"])
    return {label: float(np.median(v)) for label, v in p50.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calib", type=int, default=200, help="calibration faces (CelebA subset photos)")
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds (files alternate order)")
    parser.add_argument("--max-drop", type=float, default=0.3, help="LFW budget of the mixed-precision search (pp)")
    parser.add_argument("--int16", action="store_true",
                        help="also int16x8 for the peer (no XNNPACK kernels: ~36 min for its LFW pass)")
    args = parser.parse_args()
    started = time.time()
    OUT.mkdir(parents=True, exist_ok=True)
    peer_float = SHARED / "peers" / "mobilefacenet_float32.tflite"
    peer_uint8 = SHARED / "peers" / "mobilefacenet_uint8.tflite"
    mean, scale, channels = float(PEER_FLAGS[1]), float(PEER_FLAGS[3]), PEER_FLAGS[5]
    imported, manifest, check = import_model(peer_float, OUT / "peer-float32.tflite",
                                             InputSpec(mean=mean, scale=scale, channels=channels), "yunet-5pt",
                                             faces=SHARED / "data" / "media" / "gallery")
    default_float = default_model_path().with_name("edgeface-default-float32.tflite")
    default_manifest = load_manifest(default_float)
    models = {
        "mobilefacenet-peer": variants("peer", imported, manifest.input, "yunet-5pt",
                                       ("authors' uint8 file", peer_uint8), args.calib, args.max_drop, args.int16),
        "edgeface-default": variants("default", default_float, default_manifest.input, default_manifest.alignment,
                                     ("shipped int8 (TF converter)", default_model_path()), args.calib, args.max_drop,
                                     False),
    }
    result = {"calibration": {"folder": str(CELEBA), "faces": args.calib}, "import_check": check.get("given"),
              "models": {}}
    for name, found in models.items():
        latency = time_side_by_side(found["files"], args.rounds)
        for label, ms in latency.items():
            found["rows"][label]["p50_ms_1_thread"] = ms
        result["models"][name] = {"rows": found["rows"], "rewrites": found["rewrites"],
                                  "mixed_search": found["mixed_search"]}
    save("byo_peer.json", result, started)
    for name, found in result["models"].items():
        print(f"\n{name}")
        for label, row in found["rows"].items():
            lfw = row["lfw"]
            print(f"  {label:48s} LFW {100 * lfw['accuracy']:.2f} +- {100 * lfw['accuracy_se']:.2f}  AUC "
                  f"{lfw['roc_auc']:.4f}  TAR@1e-3 {100 * lfw['tar_at_far_1e-3']:.1f}  "
                  f"{row['p50_ms_1_thread']:.2f} ms  {row['size_bytes'] / 1024:.0f} KB")


if __name__ == "__main__":
    main()
