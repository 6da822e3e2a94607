"""``edgeface bench``: latency, memory and roofline of .tflite models on the light runtime.

Each (model, threads) runs in a process of its own, so load time and peak-memory growth belong to that model alone
and one model's warm caches never flatter the next. The processes are loaded and warmed up together, then timed in
interleaved rounds (A B, B A, A B, ...): on a shared machine whose load comes and goes, every model meets the same
load, so the ratio column holds (one model timed after the other read 3.5 ms against 2.0 ms for the *same file*
when a neighbour woke up between them). Single-threaded rounds also share one core, rotated by round
(``round_cpus``). The roofline peak is measured in the same run, per precision, by LiteRT
itself (``runtime/roofline.py``).
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
from edgeface.runtime.threads import check_threads

ROUNDS = 40  # timed rounds per model; --runs is split between them

def percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


class Loaded:
    """Inside a worker process: one model loaded, its first inference timed, then timed runs on demand."""

    def __init__(self, path: str, threads: int, xnnpack: bool) -> None:
        from edgeface.runtime.interpreter import Model
        from edgeface.runtime.roofline import random_input

        self.rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        self.model = Model(path, threads=threads, xnnpack=xnnpack)
        self.init_ms = (time.perf_counter() - t0) * 1e3
        self.x = random_input(self.model.input, np.random.default_rng(0))
        t0 = time.perf_counter()
        self.model.invoke(self.x)
        self.first_ms = (time.perf_counter() - t0) * 1e3
        self.path, self.threads = path, threads

    def run(self, count: int) -> list[float]:
        """Milliseconds of ``count`` inferences."""
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            self.model.invoke(self.x)
            times.append((time.perf_counter() - t0) * 1e3)
        return times

    def facts(self) -> dict:
        """What does not depend on timing: load, first inference, memory growth, size, FLOPs by precision."""
        from edgeface.runtime.flops import flops_per_op
        from edgeface.runtime.graph import list_ops, read_graph
        from edgeface.runtime.roofline import flops_by_precision

        content = self.model.content
        per_op = flops_per_op(self.path, content)  # from the file itself: a manifest may describe its origin
        return {"model": str(self.path), "threads": self.threads, "xnnpack": self.model.xnnpack,
                "backend": self.model.backend, "dtype": self.model.input.dtype, "init_ms": self.init_ms,
                "first_ms": self.first_ms,
                "peak_rss_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.rss0) / 1024.0,
                "size_bytes": len(content), "gzip_bytes": len(gzip.compress(content, 9)),
                "flops": int(sum(per_op.values())),
                "flops_by_precision": flops_by_precision(list_ops(read_graph(content)), per_op)}


def summarise(chunks: list[list[float]]) -> dict:
    """Latency statistics of every timed run, and per round (``chunks``: each round's times) its median and its best
    run, which the ratios pair up round by round."""
    t = np.concatenate(chunks)
    medians = [float(np.median(c)) for c in chunks]
    return {"mean_ms": float(t.mean()), "std_ms": float(t.std()), "p50_ms": percentile(t, 50),
            "p90_ms": percentile(t, 90), "p99_ms": percentile(t, 99), "min_ms": float(t.min()),
            "throughput_per_s": 1e3 / float(t.mean()), "runs": len(t), "rounds": len(chunks),
            "round_p50_spread": float((max(medians) - min(medians)) / np.median(medians)),
            "round_p50_ms": medians, "round_best_ms": [float(min(c)) for c in chunks]}


class Worker:
    """The parent's handle on one worker process: commands as JSON lines on stdin, answers on stdout."""

    def __init__(self, payload: dict) -> None:
        threads = str(payload["threads"])
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        self.what = payload.get("model", "the peak probe")
        self.process = subprocess.Popen([sys.executable, "-m", "edgeface.runtime.bench", json.dumps(payload)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env)
        self.ready = self.read()

    def read(self) -> dict:
        line = self.process.stdout.readline()
        if not line.startswith("{"):
            self.process.kill()
            err = [ln for ln in self.process.stderr.read().splitlines() if ln.startswith("edgeface: error:")]
            raise EdgefaceError(err[0].removeprefix("edgeface: error: ") if err else
                                f"benchmark worker failed for {self.what}")
        return json.loads(line)

    def ask(self, command: dict) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


def _subprocess(payload: dict) -> dict:
    """A one-shot worker (the peak probes): its answer."""
    worker = Worker(payload)
    worker.close()
    return worker.ready


def time_interleaved(models: list[str], threads: int, runs: int, warmup: int, xnnpack: bool,
                     rounds: int = ROUNDS) -> list[dict]:
    """Every model loaded in its own process, warmed up, then timed in ``rounds`` alternating rounds."""
    workers = []
    try:
        for m in models:
            workers.append(Worker({"model": m, "threads": threads, "xnnpack": xnnpack}))
        for w in workers:
            w.ask({"run": warmup})
        chunks: list[list[list[float]]] = [[] for _ in workers]
        per_round = max(1, -(-runs // rounds))
        cpus = round_cpus(threads)
        for r in range(min(rounds, runs)):
            order = range(len(workers)) if r % 2 == 0 else reversed(range(len(workers)))
            for i in order:
                if cpus:
                    os.sched_setaffinity(workers[i].process.pid, {cpus[r % len(cpus)]})
                chunks[i].append(workers[i].ask({"run": per_round})["times"])
        return [{**w.ask({"facts": True}), **summarise(chunks[i]), "pinned": bool(cpus)}
                for i, w in enumerate(workers)]
    finally:
        for w in workers:
            w.close()


def round_cpus(threads: int) -> list[int]:
    """The cores single-threaded rounds are pinned to, one per round in turn; empty where pinning cannot apply.

    Every model of a round runs on the same core: on a shared machine (a VM's virtual cores above all) one core can
    run slower than another for seconds, and a worker the scheduler kept on it read the *same file* 1.26x slower
    than its twin on the other core. Rotating the core by round spreads the models' latency over all cores alike.
    Only one thread is pinned (affinity is per thread, and a thread pool must spread anyway)."""
    if threads != 1 or not hasattr(os, "sched_setaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def parse_threads(text: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4]: the thread counts a user asks ``bench`` for, checked."""
    try:
        counts = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise EdgefaceError(f"--threads must be comma-separated integers, got {text!r}") from None
    if not counts:
        raise EdgefaceError("--threads needs at least one thread count, e.g. 1 or 1,2,4")
    return [check_threads(count) for count in counts]


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

    peaks: dict[tuple[str, int], dict] = {}
    rows = []
    for t in threads:
        measured = time_interleaved(models, t, runs, warmup, xnnpack)
        base = measured[0]
        for row in measured:
            # paired by round (the two ran back to back), each round's best run (a neighbour's load only ever adds
            # time): the median of these ratios cancels load that comes and goes, which pooled medians do not
            row["ratio_to_first"] = float(np.median(np.array(row["round_best_ms"]) / np.array(base["round_best_ms"])))
            # the roofline compares capabilities: the model's best round against the probe's best-of timings, both
            # steady on a machine whose load comes and goes (the p50 column is the latency a user meets)
            row["achieved_gflops"] = row["flops"] / (min(row["round_p50_ms"]) * 1e-3) / 1e9
            if roofline and row["flops_by_precision"]:
                for p in row["flops_by_precision"]:
                    if (p, t) not in peaks:
                        peaks[p, t] = _subprocess({"probe": p, "threads": t, "xnnpack": xnnpack})
                row["peak_of"] = peak_label(row["flops_by_precision"])
                row["peak_gflops"] = mixed_peak(row["flops_by_precision"],
                                               {p: peaks[p, t]["gflops"] for p in row["flops_by_precision"]})
                row["peak_probes"] = {p: peaks[p, t] for p in row["flops_by_precision"]}
                row["efficiency"] = row["achieved_gflops"] / row["peak_gflops"]
            rows.append(row)
    return rows


def peak_label(mix: dict[str, int]) -> str:
    """Which peak a row is held against: "int8", or "int8 97 % + float32 3 %" for a mixed model."""
    total = sum(mix.values())
    if len(mix) <= 1:
        return next(iter(mix), "none")
    return " + ".join(f"{p} {100 * f / total:.0f} %" for p, f in sorted(mix.items(), key=lambda kv: -kv[1]))


def _worker(payload: dict) -> None:
    """Entry of a measuring process: a peak probe answers once; a model answers ``{"run": N}`` (its times) and
    ``{"facts": true}`` commands, one JSON line each, until its stdin closes."""
    from edgeface.errors import EdgefaceError as Error

    try:
        if payload.get("probe"):
            from edgeface.runtime.roofline import peak_gflops

            print(json.dumps(peak_gflops(payload["probe"], payload["threads"], payload["xnnpack"])), flush=True)
            return
        loaded = Loaded(payload["model"], payload["threads"], payload["xnnpack"])
    except Error as exc:
        print(f"edgeface: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({"loaded": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        answer = {"times": loaded.run(int(command["run"]))} if "run" in command else loaded.facts()
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
