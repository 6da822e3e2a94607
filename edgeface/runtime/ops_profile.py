"""``edgeface bench --ops``: where a model's time goes, op by op, and which ops XNNPACK does not run.

Each op is cut out of the file as a one-op model (``runtime/graph.py``) and timed alone on the same runtime,
delegate and thread count. Isolated timings miss what fusion across ops saves and include a few microseconds of
call overhead each, so the report prints their sum beside the whole model's p50: the two agree to within that.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.runtime.flops import flops_per_op
from edgeface.runtime.graph import list_ops, one_op_model, read_graph
from edgeface.runtime.interpreter import Model, check_tflite_file, native_stderr_silenced, quantize_to, tensor_spec
from edgeface.runtime.roofline import random_input, time_invokes


def _delegated(model: Model) -> bool:
    return any(op["op_name"] == "DELEGATE" for op in model.interpreter._get_ops_details())


def time_op(content: bytes, values: list[np.ndarray], name: str, threads: int, xnnpack: bool,
            runs: int) -> tuple[float, float, bool]:
    """(p50 ms, best ms, run by XNNPACK) of a one-op model fed ``values``, its inputs as the whole model computed
    them."""
    model = Model(f"<{name}>", threads=threads, xnnpack=xnnpack, content=content, quiet_fallback=True)
    interp = model.interpreter
    details = interp.get_input_details()
    if any(tuple(d["shape"]) != v.shape for d, v in zip(details, values, strict=True)):
        for d, v in zip(details, values, strict=True):  # the file's placeholder shapes; the run had real ones
            interp.resize_tensor_input(d["index"], list(v.shape))
        with native_stderr_silenced():
            interp.allocate_tensors()
    for detail, value in zip(details, values, strict=True):
        interp.set_tensor(detail["index"], value)
    times = time_invokes(model, np.zeros(0), runs=runs, warmup=3, budget_s=0.3)
    return float(np.median(times)), float(times.min()), _delegated(model)


def off_xnnpack(content: bytes) -> dict[str, int]:
    """"OP precision" -> how many such ops XNNPACK leaves to the reference kernels (each op loaded alone; nothing
    is timed, so this is cheap enough to run before and after a quantization)."""
    graph = read_graph(content)
    off: dict[str, int] = {}
    for op in list_ops(graph):
        if not op.variable_inputs:
            continue
        single, _ = one_op_model(graph, op.index)
        try:
            delegated = _delegated(Model(f"<{op.kind}>", content=single, quiet_fallback=True))
        except EdgefaceError:
            delegated = False
        if not delegated:
            off[f"{op.kind} {op.precision}"] = off.get(f"{op.kind} {op.precision}", 0) + 1
    return off


def tensor_runs(content: bytes, xs: Iterable[np.ndarray]) -> Iterator[dict[int, np.ndarray]]:
    """Every tensor of one real run per input (reference kernels, all intermediates kept, one interpreter for all);
    a float input is quantized for a quantized model."""
    from edgeface.runtime.interpreter import _interpreter_classes

    _, interpreter_cls, resolver = _interpreter_classes()[0]
    with native_stderr_silenced(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*preserve_all_tensors.*")  # on purpose: every tensor is read
        interp = interpreter_cls(model_content=content, experimental_preserve_all_tensors=True,
                                 experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    spec = tensor_spec(detail)
    for x in xs:
        interp.set_tensor(detail["index"], x if x.dtype == np.dtype(spec.dtype) else quantize_to(x, spec))
        interp.invoke()
        values = {}
        for d in interp.get_tensor_details():
            try:
                values[int(d["index"])] = interp.get_tensor(d["index"]).copy()
            except ValueError:  # a tensor without data (e.g. an optional input slot)
                continue
        yield values


def tensor_values(content: bytes, x: np.ndarray) -> dict[int, np.ndarray]:
    """Every tensor of one real run on ``x`` (``tensor_runs`` of one input)."""
    return next(tensor_runs(content, [x]))


def profile_ops(path: str | Path, threads: int = 1, xnnpack: bool = True, runs: int = 50) -> dict:
    """Every op of subgraph 0 timed alone, slowest first, with the whole model's p50 for comparison."""
    from edgeface.progress import track

    content = check_tflite_file(path)
    graph = read_graph(content)
    if len(graph.subgraphs) > 1:
        raise EdgefaceError(f"{Path(path).name} has {len(graph.subgraphs)} subgraphs; --ops profiles single-graph "
                            "models only")
    ops = list_ops(graph)
    flops = flops_per_op(path, content)
    whole = Model(path, threads=threads, xnnpack=xnnpack, content=content)
    x = random_input(whole.input, np.random.default_rng(0))
    whole_times = time_invokes(whole, x, runs=runs)
    values = tensor_values(content, x)
    rows = []
    for op in track(ops, description=f"timing {len(ops)} ops"):
        if not op.variable_inputs:
            continue
        try:
            single, inputs = one_op_model(graph, op.index)
            ms, best, delegated = time_op(single, [values[t] for t in inputs], op.kind, threads, xnnpack, runs)
        except EdgefaceError as exc:
            raise EdgefaceError(f"op {op.index} ({op.kind}) cannot run alone: {exc}") from None
        rows.append({"index": op.index, "op": op.kind, "precision": op.precision, "name": op.name,
                     "output_shape": list(op.output_shape), "ms": ms, "best_ms": best,
                     "flops": flops.get(op.index, 0),
                     "xnnpack": delegated})
    total = sum(r["ms"] for r in rows) or 1.0
    for r in rows:
        r["share"] = r["ms"] / total
    rows.sort(key=lambda r: -r["ms"])
    by_kind: dict[str, dict] = {}
    for r in rows:
        k = by_kind.setdefault(f"{r['op']} {r['precision']}", {"count": 0, "ms": 0.0})
        k["count"] += 1
        k["ms"] += r["ms"]
    off: dict[str, int] = {}
    for r in rows:
        if xnnpack and not r["xnnpack"]:
            off[f"{r['op']} {r['precision']}"] = off.get(f"{r['op']} {r['precision']}", 0) + 1
    # best times beside the medians: on a busy machine a 5 ms whole-model run is interrupted far more often than a
    # 50 us op, so only the best of each compares the two fairly
    return {"model": str(path), "threads": threads, "whole_model_p50_ms": float(np.median(whole_times)),
            "whole_model_best_ms": float(whole_times.min()), "sum_of_ops_ms": total,
            "sum_of_ops_best_ms": sum(r["best_ms"] for r in rows),
            "not_on_xnnpack": off, "by_kind": by_kind, "ops": rows}
