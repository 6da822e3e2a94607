"""Roofline per precision and per-op profiles of the shipped models and the MobileFaceNet peers, in one run.

    python benchmarks/roofline_ops.py
-> results/roofline_ops.json

``bench`` on one thread holds each model against the peak of its own precision (int8 against an int8 probe, float
against a float probe); ``bench --ops`` shows where each model's time goes and which ops XNNPACK leaves behind.
"""

from __future__ import annotations

import time

from common import SHARED, save

from edgeface.default_model import default_model_path
from edgeface.runtime.bench import bench
from edgeface.runtime.ops_profile import profile_ops


def main() -> None:
    started = time.time()
    int8 = default_model_path()
    models = {"edgeface int8": int8, "edgeface float32": int8.with_name("edgeface-default-float32.tflite"),
              "peer uint8 (authors')": SHARED / "peers" / "mobilefacenet_uint8.tflite",
              "peer float32": SHARED / "peers" / "mobilefacenet_float32.tflite"}
    rows = bench([str(p) for p in models.values()], [1], runs=300, warmup=30)
    names = {str(p): n for n, p in models.items()}
    roofline = [{"model": names[r["model"]], **{k: r[k] for k in ("p50_ms", "flops", "achieved_gflops",
                                                                  "peak_gflops", "peak_of", "efficiency")}}
                for r in rows]
    profiles = {}
    for name, path in models.items():
        report = profile_ops(path, threads=1)
        profiles[name] = {"whole_model_p50_ms": report["whole_model_p50_ms"], "sum_of_ops_ms": report["sum_of_ops_ms"],
                          "not_on_xnnpack": report["not_on_xnnpack"], "by_kind": report["by_kind"],
                          "slowest": report["ops"][:8]}
    save("roofline_ops.json", {"roofline": roofline, "ops": profiles}, started)
    for r in roofline:
        print(f"{r['model']:24s} {r['p50_ms']:.3f} ms  {r['achieved_gflops']:.0f} of {r['peak_gflops']:.0f} G/s "
              f"({100 * r['efficiency']:.0f} % of the {r['peak_of']} peak)")
    for name, p in profiles.items():
        print(name, "not on XNNPACK:", p["not_on_xnnpack"] or "none")


if __name__ == "__main__":
    main()
