"""``edgeface bench``: latency, memory and roofline of .tflite models on the light runtime.

Each (model, threads) is measured in a fresh interpreter process, so load time and peak-memory growth belong
to that model alone and one model's warm caches never flatter the next. The roofline peak is a float32 GEMM
probe (numpy/OpenBLAS) pinned to the same number of threads, measured in the same run.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgeface.errors import EdgefaceError


def percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def measure(path: str, threads: int, runs: int, warmup: int, xnnpack: bool) -> dict:
    """Runs inside the worker process: load, first inference, warm-up, timed runs."""
    from edgeface.runtime.flops import count_tflite_flops
    from edgeface.runtime.interpreter import Model

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    model = Model(path, threads=threads, xnnpack=xnnpack)
    init_ms = (time.perf_counter() - t0) * 1e3
    spec = model.input
    rng = np.random.default_rng(0)
    if spec.dtype in ("int8", "uint8"):
        info = np.iinfo(spec.dtype)
        x = rng.integers(info.min, info.max + 1, spec.shape).astype(spec.dtype)
    else:
        x = rng.uniform(-1, 1, spec.shape).astype(spec.dtype)
    t0 = time.perf_counter()
    model.invoke(x)
    first_ms = (time.perf_counter() - t0) * 1e3
    for _ in range(warmup):
        model.invoke(x)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        model.invoke(x)
        times[i] = time.perf_counter() - t0
    times *= 1e3
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    flops = count_tflite_flops(path)  # from the file itself: a manifest may describe the model it came from
    content = Path(path).read_bytes()
    return {
        "model": str(path), "threads": threads, "xnnpack": model.xnnpack, "backend": model.backend,
        "dtype": spec.dtype, "init_ms": init_ms, "first_ms": first_ms, "mean_ms": float(times.mean()),
        "std_ms": float(times.std()), "p50_ms": percentile(times, 50), "p90_ms": percentile(times, 90),
        "p99_ms": percentile(times, 99), "min_ms": float(times.min()), "throughput_per_s": 1e3 / float(times.mean()),
        "peak_rss_mb": (rss1 - rss0) / 1024.0, "size_bytes": len(content),
        "gzip_bytes": len(gzip.compress(content, 9)), "flops": int(flops), "runs": runs,
    }


def gemm_peak_gflops(threads: int, size: int = 768, repeats: int = 7) -> float:
    """Best float32 GEMM rate in this process (call with OPENBLAS_NUM_THREADS set before numpy's import)."""
    a = np.random.default_rng(0).random((size, size), np.float32)
    b = a.T.copy()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def _subprocess(payload: dict) -> dict:
    threads = str(payload["threads"])
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    done = subprocess.run([sys.executable, "-m", "edgeface.runtime.bench", json.dumps(payload)],
                          capture_output=True, text=True, env=env)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        err = [ln for ln in done.stderr.splitlines() if ln.startswith("edgeface: error:")]
        raise EdgefaceError(err[0].removeprefix("edgeface: error: ") if err else
                            f"benchmark worker failed for {payload.get('model', 'the GEMM probe')}")
    return json.loads(lines[-1])


def bench(models: list[str], threads: list[int], runs: int = 200, warmup: int = 20, xnnpack: bool = True,
          roofline: bool = True) -> list[dict]:
    """Measure every model at every thread count; ratios are to the first model at the same thread count."""
    from edgeface.runtime.interpreter import check_tflite_file

    if not models:
        raise EdgefaceError("no model to benchmark")
    if any(t < 1 for t in threads):
        raise EdgefaceError(f"thread counts must be at least 1, got {threads}")
    if runs < 1 or warmup < 0:
        raise EdgefaceError("--runs must be at least 1 and --warmup at least 0")
    for m in models:
        check_tflite_file(m)
    peaks = {t: _subprocess({"probe": True, "threads": t})["gflops"] for t in threads} if roofline else {}
    rows = []
    for t in threads:
        base = None
        for m in models:
            row = _subprocess({"model": m, "threads": t, "runs": runs, "warmup": warmup, "xnnpack": xnnpack})
            base = base or row
            row["ratio_to_first"] = row["p50_ms"] / base["p50_ms"]
            row["achieved_gflops"] = row["flops"] / (row["p50_ms"] * 1e-3) / 1e9
            if roofline:
                row["peak_gflops"] = peaks[t]
                row["efficiency"] = row["achieved_gflops"] / peaks[t]
            rows.append(row)
    return rows


def _worker(payload: dict) -> None:
    """Entry of the measuring subprocess: print one JSON line."""
    from edgeface.errors import EdgefaceError as Error

    try:
        if payload.get("probe"):
            result = {"gflops": gemm_peak_gflops(payload["threads"])}
        else:
            result = measure(payload["model"], payload["threads"], payload["runs"], payload["warmup"],
                             payload["xnnpack"])
    except Error as exc:
        print(f"edgeface: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(result))


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
