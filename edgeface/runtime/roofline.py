"""The compute peak of each precision, measured on the runtime the models run on.

Why not a numpy GEMM: an int8 model measured against a float32 BLAS peak read "190 % of peak", a figure that says
nothing. Each probe here is a 1x1 CONV_2D (a GEMM of 256 pixels x 256 -> 256 channels, weights and activations small
enough to stay in cache), written as a .tflite in the precision being probed and run by LiteRT with XNNPACK, the
same path the models take. A mixed model is compared with the peak of its own mix: the time its FLOPs would take if
every op ran at its precision's peak.
"""

from __future__ import annotations

import time

import numpy as np

from edgeface.runtime.graph import OpInfo, pack, schema

PROBE_PIXELS = 16  # 16x16 pixels
PROBE_CHANNELS = 256
_TYPES = {"float32": 0, "uint8": 3, "int8": 9, "int16": 7, "int32": 2, "int64": 4}
# precision -> (activation type, weight type); float16-weights models compute in float32
PRECISIONS = {"float32": ("float32", "float32"), "int8": ("int8", "int8"), "int16x8": ("int16", "int8"),
              "dynamic-int8": ("float32", "int8"), "uint8": ("uint8", "uint8")}


def _tensor(name: str, shape: tuple[int, ...], dtype: str, buffer: int, scale: list[float] | None = None,
            zero: list[int] | None = None, axis: int = 0) -> object:
    s = schema()
    t = s.TensorT()
    t.name, t.shape, t.type, t.buffer = name.encode(), np.array(shape, np.int32), _TYPES[dtype], buffer
    if scale is not None:
        q = s.QuantizationParametersT()
        q.scale = np.array(scale, np.float32)
        q.zeroPoint = np.array(zero or [0] * len(scale), np.int64)
        q.quantizedDimension = axis
        t.quantization = q
    return t


def _buffer(array: np.ndarray) -> object:
    b = schema().BufferT()
    b.data = np.frombuffer(array.tobytes(), np.uint8)
    return b


def probe_model(precision: str, pixels: int = PROBE_PIXELS, channels: int = PROBE_CHANNELS) -> bytes:
    """A one-op .tflite: 1x1 CONV_2D over (1, pixels, pixels, channels) in ``precision``."""
    s = schema()
    act, weight = PRECISIONS[precision]
    rng = np.random.default_rng(0)
    quant_act = act in ("int8", "int16", "uint8")
    w_scale, w_zero = ([0.01], [128]) if weight == "uint8" else ([0.01] * channels, None)  # uint8: per tensor
    if weight == "uint8":
        w = rng.integers(0, 256, (channels, 1, 1, channels)).astype(np.uint8)
    elif weight == "int8":
        w = rng.integers(-127, 128, (channels, 1, 1, channels)).astype(np.int8)
    else:
        w = rng.normal(0, 0.05, (channels, 1, 1, channels)).astype(np.float32)
    bias_dtype = {"int8": "int32", "uint8": "int32", "int16": "int64"}.get(act, "float32")
    bias = np.zeros(channels, {"int32": np.int32, "int64": np.int64, "float32": np.float32}[bias_dtype])
    in_scale = [0.02] if quant_act else None
    shape = (1, pixels, pixels, channels)
    tensors = [
        _tensor("input", shape, act, 0, in_scale, [0] if quant_act else None),
        _tensor("weights", w.shape, weight, 1, w_scale if weight != "float32" else None, w_zero),
        _tensor("bias", bias.shape, bias_dtype, 2, [0.02 * 0.01] * len(w_scale) if quant_act else None),
        _tensor("output", shape, act, 0, [0.05] if quant_act else None, [0] if quant_act else None),
    ]
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, np.array([0, 1, 2], np.int32), np.array([3], np.int32)
    opts = s.Conv2DOptionsT()
    opts.padding, opts.strideW, opts.strideH = s.Padding.VALID, 1, 1
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.Conv2DOptions, opts
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.CONV_2D
    code.version = 3 if quant_act else 1
    graph = s.SubGraphT()
    graph.tensors, graph.operators = tensors, [op]
    graph.inputs, graph.outputs = np.array([0], np.int32), np.array([3], np.int32)
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [s.BufferT(), _buffer(w), _buffer(bias)]
    model.description = f"edgeface roofline probe ({precision})".encode()
    return pack(model)


def probe_flops(pixels: int = PROBE_PIXELS, channels: int = PROBE_CHANNELS) -> int:
    return 2 * pixels * pixels * channels * channels


def time_invokes(model: object, x: np.ndarray, runs: int, warmup: int = 3, budget_s: float = 1.0) -> np.ndarray:
    """Milliseconds of ``runs`` bare invokes (fewer if ``budget_s`` runs out, never fewer than 5): the input is set
    once and no output is read, so only the runtime's own work is timed."""
    interp = model.interpreter
    if x.size:
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
    for _ in range(warmup):
        interp.invoke()
    times = []
    start = time.perf_counter()
    while len(times) < runs and (len(times) < 5 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        interp.invoke()
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1e3


def random_input(spec: object, rng: np.random.Generator) -> np.ndarray:
    """Random data of a tensor's shape and dtype (the full range for integers)."""
    if np.issubdtype(np.dtype(spec.dtype), np.integer):
        info = np.iinfo(spec.dtype)
        return rng.integers(info.min, info.max + 1, spec.shape).astype(spec.dtype)
    return rng.uniform(-1, 1, spec.shape).astype(spec.dtype)


PROBE_REPEATS = 7  # independent timings of the probe: the peak is their median, their spread is reported


def peak_gflops(precision: str, threads: int, xnnpack: bool = True) -> dict:
    """The probe's rate in ``precision`` on ``threads`` threads: ``gflops`` is the median of PROBE_REPEATS best-of
    timings (one lucky run no longer sets the peak), ``spread`` their (max - min) / median, and ``limit_gflops`` what
    the core's instruction set and clock allow (``isa_limit``), with ``check`` saying whether the probe is within it."""
    from edgeface.runtime.interpreter import Model

    model = Model(f"<{precision} probe>", threads=threads, xnnpack=xnnpack, content=probe_model(precision))
    x = random_input(model.input, np.random.default_rng(0))
    time_invokes(model, x, runs=200, warmup=20, budget_s=0.3)  # clocks up, caches warm
    rates = [probe_flops() / (float(time_invokes(model, x, runs=100, warmup=0, budget_s=0.2).min()) * 1e-3) / 1e9
             for _ in range(PROBE_REPEATS)]
    median = float(np.median(rates))
    limit = isa_limit(precision, threads)
    check = "no limit known for this CPU" if limit is None else (
        "within the instruction set's limit" if median <= limit else "ABOVE the instruction set's limit: suspect")
    return {"gflops": median, "spread": (max(rates) - min(rates)) / median, "limit_gflops": limit, "check": check}


def cpu_facts() -> tuple[set[str], float | None]:
    """The CPU's feature flags and its highest clock in GHz (cpufreq's maximum, else /proc/cpuinfo's)."""
    flags: set[str] = set()
    mhz: list[float] = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags |= set(value.split())
                elif key.strip() == "cpu MHz":
                    mhz.append(float(value))
    except OSError:
        return flags, None
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", encoding="utf-8") as handle:
            return flags, int(handle.read()) / 1e6
    except (OSError, ValueError):
        return flags, max(mhz) / 1e3 * TURBO_MARGIN if mhz else None


TURBO_MARGIN = 1.5  # a VM's cpuinfo shows the base clock; turbo can run this much faster


def isa_limit(precision: str, threads: int) -> float | None:
    """GFLOP/s (or G op/s) one core's widest units can reach, times ``threads``: e.g. AVX-512 = 2 FMA ports x 16
    float32 lanes x 2; AMX-INT8 = 1,024 int8 multiply-adds a cycle; AVX-512 VNNI = 2 ports x 64. None when unknown."""
    flags, ghz = cpu_facts()
    if ghz is None:
        return None
    table = INTEGER_OPS_PER_CYCLE if precision != "float32" else FLOAT_OPS_PER_CYCLE
    per_cycle = next((ops for flag, ops in table if flag in flags), None)
    return per_cycle * ghz * threads if per_cycle else None


# the widest unit a core has, first match wins: x86 then arm64 flags
INTEGER_OPS_PER_CYCLE = [("amx_int8", 2048), ("avx512_vnni", 256), ("avx_vnni", 128), ("avx2", 64),
                         ("i8mm", 256), ("asimddp", 128), ("asimd", 32)]
FLOAT_OPS_PER_CYCLE = [("avx512f", 64), ("fma", 32), ("asimd", 16)]


def flops_by_precision(ops: list[OpInfo], flops: dict[int, int]) -> dict[str, int]:
    """FLOPs of the weighted ops, summed per precision (float16 weights compute in float32)."""
    out: dict[str, int] = {}
    for op in ops:
        if flops.get(op.index):
            key = "float32" if op.precision in ("float16", "float32") else op.precision
            out[key] = out.get(key, 0) + flops[op.index]
    return out


def mixed_peak(by_precision: dict[str, int], peaks: dict[str, float]) -> float:
    """The rate the model would reach if each op ran at its precision's peak (a FLOP-weighted harmonic mean)."""
    total = sum(by_precision.values())
    ideal_s = sum(f / (peaks[p] * 1e9) for p, f in by_precision.items())
    return total / ideal_s / 1e9 if ideal_s else float("nan")
