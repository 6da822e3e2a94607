"""Input size as a compression knob: dlib's network on its chip at 150, 128 and 112 px, accuracy against latency.

    python benchmarks/archive/dlib_input_size.py [--sizes 150,128,112]

The network is convolutions and a global average pool, so the same weights run at any input size: the 150 px chip
(YuNet-aligned, `yunet-dlib150`) is area-resized to the model's size, as `edgeface eval` and `recognize` do for any
model whose input is smaller than its chip. No fine-tuning at the smaller sizes: what the knob costs as it is. Each
size is exported int8 (calibrated on prepared dlib chips), scored on LFW View 2 from the file, and all are timed side by
side in one `edgeface bench` run (1 thread).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import LFW, PAIRS, edgeface_json, save

from edgeface.training.train.dlib_port import save_dlib_keras


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="150,128,112")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "edgeface" / "dlib-sizes")
    parser.add_argument("--calib", type=Path, nargs="+",
                        default=[Path.home() / ".cache" / "edgeface" / "prepared-dlib" / n
                                 for n in ("celeba", "utkface-subset")])
    args = parser.parse_args()
    started = time.time()
    rows, files = [], []
    for size in (int(s) for s in args.sizes.split(",")):
        keras_model = save_dlib_keras(args.work / f"dlib{size}.keras", input_size=size)
        out = args.work / f"dlib{size}-int8.tflite"
        exported = edgeface_json("export", str(keras_model), "-o", str(out), "--quantize", "int8",
                                 *[f for c in args.calib for f in ("--calib-data", str(c))])
        lfw = edgeface_json("eval", str(out), "--lfw-dir", str(LFW), "--pairs", str(PAIRS))
        rows.append({"size": size, "gflops": exported["flops"] / 1e9, "accuracy": lfw["accuracy"],
                     "accuracy_se": lfw["accuracy_se"], "roc_auc": lfw["roc_auc"], "tar_at_far": lfw["tar_at_far"]})
        files.append(str(out))
    timing = {Path(r["model"]).name: r for r in edgeface_json("bench", *files, "--threads", "1", "--runs", "300")}
    for row, file in zip(rows, files, strict=True):
        t = timing[Path(file).name]
        row.update({"p50_ms": t["p50_ms"], "ratio_to_first": t["ratio_to_first"]})
        print(f"{row['size']} px: {row['gflops']:.3f} GFLOPs, LFW {100 * row['accuracy']:.2f} % +- "
              f"{100 * row['accuracy_se']:.2f}, TAR@1e-3 {100 * row['tar_at_far']['0.001']:.1f} %, int8 p50 "
              f"{row['p50_ms']:.3f} ms ({row['ratio_to_first']:.2f}x)")
    save("dlib_input_size.json", {"rows": rows}, started)


if __name__ == "__main__":
    main()
