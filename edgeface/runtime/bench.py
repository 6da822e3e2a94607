"""``edgeface bench``: latency, memory and roofline of .tflite models on the light runtime.

Each (model, threads) is measured in a fresh interpreter process, so load time and peak-memory growth belong
to that model alone and one model's warm caches never flatter the next. The roofline peak is measured in the same
run, per precision, by LiteRT itself (``runtime/roofline.py``): an int8 model is held against the int8 peak, a float
model against the float32 one, a mixed model against the peak of its own mix.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from edgeface.errors import EdgefaceError


def percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def measure(path: str, threads: int, runs: int, warmup: int, xnnpack: bool) -> dict:
    """Runs inside the worker process: load, first inference, warm-up, timed runs."""
    from edgeface.runtime.flops import flops_per_op
    from edgeface.runtime.graph import list_ops, read_graph
    from edgeface.runtime.interpreter import Model
    from edgeface.runtime.roofline import flops_by_precision, random_input

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    model = Model(path, threads=threads, xnnpack=xnnpack)
    init_ms = (time.perf_counter() - t0) * 1e3
    spec = model.input
    x = random_input(spec, np.random.default_rng(0))
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
    content = model.content
    per_op = flops_per_op(path, content)  # from the file itself: a manifest may describe the model it came from
    mix = flops_by_precision(list_ops(read_graph(content)), per_op)
    return {
        "model": str(path), "threads": threads, "xnnpack": model.xnnpack, "backend": model.backend,
        "dtype": spec.dtype, "init_ms": init_ms, "first_ms": first_ms, "mean_ms": float(times.mean()),
        "std_ms": float(times.std()), "p50_ms": percentile(times, 50), "p90_ms": percentile(times, 90),
        "p99_ms": percentile(times, 99), "min_ms": float(times.min()), "throughput_per_s": 1e3 / float(times.mean()),
        "peak_rss_mb": (rss1 - rss0) / 1024.0, "size_bytes": len(content),
        "gzip_bytes": len(gzip.compress(content, 9)), "flops": int(sum(per_op.values())), "runs": runs,
        "flops_by_precision": mix,
    }


def peak_label(mix: dict[str, int]) -> str:
    """Which peak a row is held against: "int8", or "int8 97 % + float32 3 %" for a mixed model."""
    total = sum(mix.values())
    if len(mix) <= 1:
        return next(iter(mix), "none")
    return " + ".join(f"{p} {100 * f / total:.0f} %" for p, f in sorted(mix.items(), key=lambda kv: -kv[1]))


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
    from edgeface.runtime.roofline import mixed_peak

    peaks: dict[tuple[str, int], float] = {}
    rows = []
    for t in threads:
        base = None
        for m in models:
            row = _subprocess({"model": m, "threads": t, "runs": runs, "warmup": warmup, "xnnpack": xnnpack})
            base = base or row
            row["ratio_to_first"] = row["p50_ms"] / base["p50_ms"]
            row["achieved_gflops"] = row["flops"] / (row["p50_ms"] * 1e-3) / 1e9
            if roofline and row["flops_by_precision"]:
                for p in row["flops_by_precision"]:
                    if (p, t) not in peaks:
                        peaks[p, t] = _subprocess({"probe": p, "threads": t, "xnnpack": xnnpack})["gflops"]
                row["peak_of"] = peak_label(row["flops_by_precision"])
                row["peak_gflops"] = mixed_peak(row["flops_by_precision"],
                                               {p: peaks[p, t] for p in row["flops_by_precision"]})
                row["efficiency"] = row["achieved_gflops"] / row["peak_gflops"]
            rows.append(row)
    return rows


def _worker(payload: dict) -> None:
    """Entry of the measuring subprocess: print one JSON line."""
    from edgeface.errors import EdgefaceError as Error

    try:
        if payload.get("probe"):
            from edgeface.runtime.roofline import peak_gflops

            result = {"gflops": peak_gflops(payload["probe"], payload["threads"], payload["xnnpack"])}
        else:
            result = measure(payload["model"], payload["threads"], payload["runs"], payload["warmup"],
                             payload["xnnpack"])
    except Error as exc:
        print(f"edgeface: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(result))


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
