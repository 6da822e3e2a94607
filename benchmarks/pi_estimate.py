"""An estimate on paper, not a measurement: ms per face and recognition FPS of the shipped models on one core of a
Raspberry Pi 4 (Cortex-A72) and a Raspberry Pi 5 (Cortex-A76).

    python benchmarks/pi_estimate.py [--models default,fast,small]
-> results/pi_estimate.json (every input, its source, and the arithmetic)

    time = FLOPs / (per-core peak of the precision x efficiency)

FLOPs are counted from the .tflite files. The efficiency (achieved / peak) is what ``edgeface bench`` measures for
the same file on this machine against its own precision's peak (``runtime/roofline.py``), assumed to carry over to
the Arm kernels of XNNPACK; that assumption is the estimate's weakest part, so both the measured efficiency and a
pessimistic half of it are given. Per-core peaks come from the vector pipes in Arm's Software Optimization Guides:
    Cortex-A72 (UAN0016A): two 128-bit ASIMD pipes, FMLA on both -> 2 x 4 lanes x 2 = 16 FLOP/cycle; no dot-product
        instructions (Armv8.0), so int8 runs as widening multiplies (SMULL/SMLAL, 8 lanes) on one pipe
        -> 8 MAC = 16 int8 ops/cycle, the same peak as float.
    Cortex-A76 (Armv8.2 with dot product): two 128-bit ASIMD pipes; FMLA 2 x 4 x 2 = 16 FLOP/cycle; SDOT on both,
        16 int8 MACs each -> 2 x 16 x 2 = 64 int8 ops/cycle.
Clocks: Raspberry Pi 4 1.8 GHz (boards since 2020; 1.5 GHz before), Raspberry Pi 5 2.4 GHz (product briefs).
"""

from __future__ import annotations

import argparse
import time

from common import save

from edgeface.default_model import FLOAT_TWINS, resolve_model
from edgeface.runtime.bench import bench
from edgeface.runtime.flops import flops_per_op
from edgeface.vision.yunet import yunet_model_path

BOARDS = {
    "Raspberry Pi 4 (Cortex-A72, 1.8 GHz)": {"ghz": 1.8, "float32": 16, "int8": 16},
    "Raspberry Pi 5 (Cortex-A76, 2.4 GHz)": {"ghz": 2.4, "float32": 16, "int8": 64},
}
DETECT_SIZE = (640, 384)  # the default --detect-size on a 16:9 frame
FACES_PER_FRAME = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="default,fast,small",
                        help="shipped models, as int8 and (where it ships) float32")
    args = parser.parse_args()
    started = time.time()
    files = {f"{name} {precision}": str(resolve_model(name if precision == "int8" else f"{name}-float32"))
             for name in args.models.split(",")
             for precision in (("int8", "float32") if name in FLOAT_TWINS else ("int8",))}
    rows = {r["model"]: r for r in bench(list(files.values()), [1], runs=300, warmup=30)}
    models = {label: rows[path] for label, path in files.items()}
    # the detector is fully convolutional: its FLOPs are counted at the default frame size
    detect_flops = sum(flops_per_op(yunet_model_path("litert"), input_shape=(1, DETECT_SIZE[1], DETECT_SIZE[0],
                                                                             3)).values())
    float_efficiency = min(r["efficiency"] for label, r in models.items() if label.endswith("float32"))
    estimate = {}
    for board, spec in BOARDS.items():
        out: dict = {}
        for label, row in models.items():
            peak = spec[label.split()[-1]] * spec["ghz"]  # GFLOP/s (or GOP/s) of one core
            eff = row["efficiency"]
            out[label] = {
                "flops": row["flops"], "peak_gops_per_core": peak, "efficiency_measured_here": eff,
                "ms_per_face": row["flops"] / (peak * eff * 1e9) * 1e3,
                "ms_per_face_at_half_efficiency": row["flops"] / (peak * eff * 0.5 * 1e9) * 1e3,
                "arithmetic": f"{row['flops'] / 1e6:.0f} MFLOP / ({peak:.1f} G/s x {eff:.2f}) "
                              f"= {row['flops'] / (peak * eff * 1e9) * 1e3:.2f} ms"}
        detect_ms = detect_flops / (spec["float32"] * spec["ghz"] * float_efficiency * 1e9) * 1e3
        out["detector_yunet_float32"] = {"flops": detect_flops, "ms_per_frame": detect_ms,
                                        "frame_size": list(DETECT_SIZE)}
        for name in args.models.split(","):
            # on an A72 (no dot product) float may win
            shipped = [k for k in (f"{name} int8", f"{name} float32") if k in out]
            best = min(shipped, key=lambda k: out[k]["ms_per_face"])
            frame_ms = detect_ms + FACES_PER_FRAME * out[best]["ms_per_face"]
            out[f"recognition_fps_one_core {name}"] = {"faces_per_frame": FACES_PER_FRAME, "embedder": best,
                                                       "ms_per_frame": frame_ms, "fps": 1e3 / frame_ms}
        estimate[board] = out
    save("pi_estimate.json", {"kind": "estimate on paper, not a measurement", "boards": BOARDS,
                              "measured_here": {k: {f: v[f] for f in ("p50_ms", "flops", "efficiency", "peak_of")}
                                                for k, v in models.items()},
                              "estimate": estimate}, started)
    for board, out in estimate.items():
        print(board)
        for label in models:
            print(f"  {label}: {out[label]['arithmetic']} "
                  f"(pessimistic: {out[label]['ms_per_face_at_half_efficiency']:.2f} ms)")
        print(f"  YuNet {DETECT_SIZE}: {out['detector_yunet_float32']['ms_per_frame']:.1f} ms")
        for name in args.models.split(","):
            fps = out[f"recognition_fps_one_core {name}"]
            print(f"  {FACES_PER_FRAME} faces/frame with {fps['embedder']} -> {fps['fps']:.0f} FPS on one core")


if __name__ == "__main__":
    main()
