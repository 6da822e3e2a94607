"""A .tflite graph as data: its ops, the precision each one computes in, and one-op models cut out of it.

Why cut one-op models: LiteRT's Python API has no op profiler, and XNNPACK runs a whole graph as one delegate node,
so the only way to time an op from Python *under the same delegate and precision* is to run it alone. Each one-op
model keeps the op's own tensors, weights and quantization parameters, so XNNPACK picks the same kernel it picks
inside the full graph (fusion across ops aside), and an op XNNPACK refuses shows up as not delegated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.tflite_metadata import pack, schema, unpack

# TensorType enum of the TFLite schema
_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8",
               10: "float64", 15: "uint32", 16: "uint16", 17: "int4"}
WEIGHTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"}  # multiply-adds
_QUANTIZED_ACTIVATIONS = {"int8": "int8", "uint8": "uint8", "int16": "int16x8"}


@cache
def op_names() -> dict[int, str]:
    """BuiltinOperator code -> name (CONV_2D, ...)."""
    ops = schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


def read_graph(data: bytes) -> Any:
    """The object API view (ModelT) of a .tflite, every weight inside it; one line on a damaged file."""
    model = unpack(data)
    if not model.subgraphs:
        raise EdgefaceError("the .tflite file has no subgraph")
    return model


def type_name(code: int) -> str:
    return _TYPE_NAMES.get(int(code), f"type{code}")


@dataclass(frozen=True)
class OpInfo:
    """One operator of subgraph 0: its position, kind, the precision it computes in and its output shape."""

    index: int
    kind: str
    precision: str
    output_shape: tuple[int, ...]
    name: str
    variable_inputs: int  # 0: the op only reads constants, so the runtime folds it at load time


def op_kind(model: Any, op: Any) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    name = op_names().get(builtin, f"op{builtin}")
    if name == "CUSTOM" and code.customCode:
        return f"CUSTOM:{code.customCode.decode(errors='replace')}"
    return name


def is_constant(model: Any, tensor: Any) -> bool:
    buf = model.buffers[tensor.buffer] if 0 <= tensor.buffer < len(model.buffers) else None
    return bool(buf is not None and ((buf.data is not None and len(buf.data)) or (buf.size or 0) > 0))


def op_precision(kind: str, in_types: list[str], weight_type: str | None) -> str:
    """How an op computes: int8 / int16x8 (int16 activations, int8 weights) / dynamic-int8 (float activations,
    int8 weights quantized on the fly) / float32 / float16-weights (float32 compute) / the input's type."""
    act = in_types[0] if in_types else "none"
    if kind in WEIGHTED_OPS and weight_type is not None:
        if act in _QUANTIZED_ACTIVATIONS:
            return _QUANTIZED_ACTIVATIONS[act]
        if act == "float32" and weight_type in ("int8", "int4"):
            return "dynamic-int8"
        return "float32"
    return _QUANTIZED_ACTIVATIONS.get(act, act)


def list_ops(model: Any) -> list[OpInfo]:
    graph = model.subgraphs[0]
    rows = []
    for i, op in enumerate(graph.operators):
        kind = op_kind(model, op)
        ins = [graph.tensors[t] for t in op.inputs if t >= 0]
        variable = [type_name(t.type) for t in ins if not is_constant(model, t)]
        weight = next((type_name(t.type) for t in ins[1:2] if is_constant(model, t)), None)
        if weight is None and kind in WEIGHTED_OPS and len(ins) > 1:  # weights fed by a DEQUANTIZE (float16)
            weight = type_name(ins[1].type)
        out = graph.tensors[op.outputs[0]] if len(op.outputs) else None
        shape = tuple(int(d) for d in out.shape) if out is not None and out.shape is not None else ()
        name = out.name.decode(errors="replace") if out is not None and out.name else f"op{i}"
        rows.append(OpInfo(i, kind, op_precision(kind, variable, weight), shape, name, len(variable)))
    return rows


def one_op_model(model: Any, index: int) -> tuple[bytes, list[int]]:
    """A .tflite holding op ``index`` of subgraph 0 alone (its tensors, buffers and opcode, nothing else), and the
    original indices of its input tensors, in order."""
    return ops_model(model, [index])


def ops_model(model: Any, indices: list[int]) -> tuple[bytes, list[int]]:
    """A .tflite of the given ops of subgraph 0 (in graph order), and the original indices of its inputs: the
    tensors the ops read but do not make. Its outputs are the tensors they make that no kept op reads."""
    import copy

    s = schema()
    graph = model.subgraphs[0]
    ops = [graph.operators[i] for i in sorted(indices)]
    made = {t for op in ops for t in op.outputs}
    read = {t for op in ops for t in op.inputs if t >= 0}
    used = [t for op in ops for t in list(op.inputs) + list(op.outputs) if t >= 0]
    remap = {t: n for n, t in enumerate(dict.fromkeys(used))}
    codes = list(dict.fromkeys(op.opcodeIndex for op in ops))
    new = s.ModelT()
    new.version = model.version
    new.description = b"edgeface op profile"
    new.buffers = [s.BufferT()]
    new.operatorCodes = [copy.copy(model.operatorCodes[c]) for c in codes]
    sub = s.SubGraphT()
    sub.tensors = []
    for t in remap:
        tensor = copy.copy(graph.tensors[t])
        if is_constant(model, tensor):
            new.buffers.append(model.buffers[tensor.buffer])
            tensor.buffer = len(new.buffers) - 1
        else:
            tensor.buffer = 0
        sub.tensors.append(tensor)
    sub.operators = []
    for op in ops:
        new_op = copy.copy(op)
        new_op.opcodeIndex = codes.index(op.opcodeIndex)
        new_op.inputs = np.array([remap[t] if t >= 0 else -1 for t in op.inputs], np.int32)
        new_op.outputs = np.array([remap[t] for t in op.outputs], np.int32)
        new_op.intermediates = None
        sub.operators.append(new_op)
    inputs = [t for t in remap if t in read and t not in made and not is_constant(model, graph.tensors[t])]
    sub.inputs = np.array([remap[t] for t in inputs], np.int32)
    sub.outputs = np.array([remap[t] for t in remap if t in made and (t not in read or t in graph.outputs)],
                           np.int32)
    new.subgraphs = [sub]
    return pack(new), inputs


def modernised(data: bytes) -> bytes:
    """The model as today's tools expect it, ops and weights untouched. Files from older converters (schema v3a)
    name their ops only in ``deprecated_builtin_code``, so the LiteRT quantizer reads every op as ADD, and carry no
    signature, through which alone it calibrates. Adds ``builtin_code`` and a ``serving_default`` signature."""
    model = read_graph(data)
    changed = False
    for code in model.operatorCodes:
        if code.builtinCode < code.deprecatedBuiltinCode:
            code.builtinCode = code.deprecatedBuiltinCode
            changed = True
    if not model.signatureDefs:
        model.signatureDefs = [_signature(model)]
        changed = True
    return pack(model) if changed else data


def _signature(model: Any) -> Any:
    s = schema()
    graph = model.subgraphs[0]

    def tensor_map(indices: Any, prefix: str) -> list:
        maps = []
        for n, t in enumerate(indices):
            m = s.TensorMapT()
            m.name, m.tensorIndex = f"{prefix}_{n}".encode(), int(t)
            maps.append(m)
        return maps

    sig = s.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = b"serving_default", 0
    sig.inputs, sig.outputs = tensor_map(graph.inputs, "input"), tensor_map(graph.outputs, "output")
    return sig


def drop_unused_tensors(model: Any) -> int:
    """Remove the tensors of subgraph 0 that no op, input, output or signature refers to (left behind by a rewrite:
    the runtime never allocates them, and tools that read every tensor fail on them). Returns how many."""
    graph = model.subgraphs[0]
    used = {int(t) for op in graph.operators for t in list(op.inputs) + list(op.outputs) if t >= 0}
    used |= {int(t) for t in graph.inputs} | {int(t) for t in graph.outputs}
    for sig in model.signatureDefs or []:
        used |= {int(m.tensorIndex) for m in list(sig.inputs or []) + list(sig.outputs or [])}
    keep = [i for i in range(len(graph.tensors)) if i in used]
    if len(keep) == len(graph.tensors):
        return 0
    remap = {old: new for new, old in enumerate(keep)}
    dropped = len(graph.tensors) - len(keep)
    graph.tensors = [graph.tensors[i] for i in keep]
    for op in graph.operators:
        op.inputs = np.array([remap[int(t)] if t >= 0 else -1 for t in op.inputs], np.int32)
        op.outputs = np.array([remap[int(t)] for t in op.outputs], np.int32)
    graph.inputs = np.array([remap[int(t)] for t in graph.inputs], np.int32)
    graph.outputs = np.array([remap[int(t)] for t in graph.outputs], np.int32)
    for sig in model.signatureDefs or []:
        for m in list(sig.inputs or []) + list(sig.outputs or []):
            m.tensorIndex = remap[int(m.tensorIndex)]
    return dropped
