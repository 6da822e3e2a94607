"""Per-face embedding latency, 1 thread, one run: the default model (float32, int8), the MobileFaceNet peers and
the dlib ResNet descriptor -> results/bench.json with the ratios. Also checks that `edgeface bench` agrees with
LiteRT's own `python -m ai_edge_litert.tools.benchmark_litert_model` on the same file (its overhead is small).

    python benchmarks/bench_vs_peers.py [--runs 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import save

from edgeface.default_model import default_model_path
from edgeface.runtime.bench import bench

DLIB_TIMER = """
import json, sys, time
import numpy as np
from edgeface.vision.embed import DlibEmbedder
from edgeface.vision.detect import FaceFinder, main_face
from edgeface.vision.image import read_image
image = read_image(sys.argv[1])
face = main_face(FaceFinder().find(image), image.shape)
dlib = DlibEmbedder()
for _ in range(3):
    dlib.embed_faces(image, [face])
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    dlib.embed_faces(image, [face])
    times.append((time.perf_counter() - t) * 1e3)
t = np.array(times)
print(json.dumps({"model": "dlib ResNet descriptor (5-point landmarks + chip + network)", "threads": 1,
                  "p50_ms": float(np.median(t)), "mean_ms": float(t.mean()), "p90_ms": float(np.percentile(t, 90)),
                  "runs": len(t)}))
"""


def one_core_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def time_dlib(image: Path, runs: int) -> dict:
    cmd = ["taskset", "-c", "0", sys.executable, "-c", DLIB_TIMER, str(image), str(runs)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=one_core_env(), check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def litert_tool(model: Path, runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run([sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", f"--model={model}",
                        f"--num_runs={runs}", "--warmup_runs=20", "--num_threads=1", f"--result_json={out}"],
                       capture_output=True, text=True, check=True)
        return json.loads(out.read_text())["latency"]["median_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", default="../shared/peers")
    parser.add_argument("--face", default="../shared/data/media/probes/obama-480p.jpg")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    started = time.time()
    int8 = default_model_path()
    float32 = default_model_path("edgeface-default-float32.tflite")
    peers = Path(args.peers)
    models = [float32, int8, peers / "mobilefacenet_float32.tflite", peers / "mobilefacenet_uint8.tflite"]
    rows = bench([str(m) for m in models], [1], runs=args.runs, warmup=30)
    dlib = time_dlib(Path(args.face), max(20, args.runs // 10))
    by = {Path(r["model"]).name: r for r in rows}
    i8, f32 = by[int8.name], by[float32.name]
    # agreement with LiteRT's own tool: alternate the two timers three times, compare medians of medians
    ours, theirs = [], []
    for _ in range(3):
        ours.append(bench([str(float32)], [1], runs=args.runs, warmup=30, roofline=False)[0]["p50_ms"])
        theirs.append(litert_tool(float32, args.runs))
    ours_ms, theirs_ms = sorted(ours)[1], sorted(theirs)[1]
    summary = {
        "int8_over_float32_p50": i8["p50_ms"] / f32["p50_ms"],
        "dlib_over_int8_p50": dlib["p50_ms"] / i8["p50_ms"],
        "dlib_over_float32_p50": dlib["p50_ms"] / f32["p50_ms"],
        "peer_float32_over_int8_p50": by["mobilefacenet_float32.tflite"]["p50_ms"] / i8["p50_ms"],
        "int8_efficiency_vs_float_gemm_peak": i8["efficiency"],
        "float32_efficiency_vs_float_gemm_peak": f32["efficiency"],
        "targets": {"int8 <= 1/2 float32": i8["p50_ms"] <= f32["p50_ms"] / 2,
                    "int8 >= 20x faster than dlib": dlib["p50_ms"] / i8["p50_ms"] >= 20},
        "bench_vs_litert_tool": {"edgeface_bench_p50_ms": ours_ms, "benchmark_litert_model_median_ms": theirs_ms,
                                 "relative_difference": abs(ours_ms - theirs_ms) / theirs_ms,
                                 "runs": {"edgeface": ours, "litert_tool": theirs}},
    }
    for r in [*rows, dlib]:
        print(f"{Path(r['model']).name:<40} p50 {r['p50_ms']:8.3f} ms")
    print(json.dumps(summary, indent=2))
    save("bench.json", {"note": "1 thread, one run; dlib pinned to one core with taskset; per face: embedding "
                                "only for TFLite models (aligned input), landmarks + chip + network for dlib",
                        "results": [*rows, dlib], "summary": summary}, started)


if __name__ == "__main__":
    main()
