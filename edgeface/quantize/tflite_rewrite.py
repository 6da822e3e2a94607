"""Rewrites of a float ``.tflite`` graph into equivalent ops XNNPACK runs fast in int8 (no TensorFlow needed).

Why: a model quantized op for op keeps every op, and the ops XNNPACK has no int8 kernel for run on the reference
kernels and cut the delegated graph into pieces. Face models built with PReLU are the usual case: a converter writes
PReLU either as ``PRELU`` or as ``max(x, 0) + alpha * min(x, 0)``, and neither int8 PRELU nor int8 MINIMUM/MAXIMUM
is fast on XNNPACK. Both become ``alpha * x + relu((1 - alpha) * x)``, the same function, in ops it does run.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from edgeface.runtime.graph import drop_unused_tensors, is_constant, op_names, pack, read_graph, schema


def _opcode_index(model: Any, name: str) -> int:
    s = schema()
    code_value = getattr(s.BuiltinOperator, name)
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == code_value:
            return i
    code = s.OperatorCodeT()
    code.builtinCode = code_value
    code.deprecatedBuiltinCode = min(code_value, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _kind(model: Any, op: Any) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    return op_names().get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)), "?")


def _zero_constant(model: Any, graph: Any, t: int) -> bool:
    values = _values(model, graph, t)
    return values is not None and bool(np.all(values == 0))


def _readers(ops: list[Any]) -> dict[int, list[int]]:
    """Tensor index -> the indices of the ops that read it."""
    readers: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            readers.setdefault(int(t), []).append(i)
    return readers


def _op(model: Any, name: str, inputs: list[int], outputs: list[int]) -> Any:
    s = schema()
    op = s.OperatorT()
    op.opcodeIndex = _opcode_index(model, name)
    op.inputs, op.outputs = np.array(inputs, np.int32), np.array(outputs, np.int32)
    options = {"SUB": (s.BuiltinOptions.SubOptions, s.SubOptionsT), "ADD": (s.BuiltinOptions.AddOptions, s.AddOptionsT),
               "MUL": (s.BuiltinOptions.MulOptions, s.MulOptionsT)}
    if name in options:
        op.builtinOptionsType, cls = options[name]
        op.builtinOptions = cls()
    return op


def _constant(model: Any, values: np.ndarray, name: bytes, quantization: Any = None) -> int:
    """A new constant tensor in subgraph 0 (float32, or int8 with ``quantization``); returns its index."""
    s = schema()
    values = np.asarray(values, np.int8 if quantization is not None else np.float32)
    buf = s.BufferT()
    buf.data = np.frombuffer(values.tobytes(), np.uint8).copy()
    model.buffers.append(buf)
    tensor = s.TensorT()
    tensor.name, tensor.type, tensor.buffer = name, 9 if quantization is not None else 0, len(model.buffers) - 1
    tensor.shape = np.array(values.shape, np.int32)
    tensor.quantization = copy.deepcopy(quantization)
    graph = model.subgraphs[0]
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _values(model: Any, graph: Any, t: int) -> np.ndarray | None:
    tensor = graph.tensors[t]
    if tensor.type != 0 or not is_constant(model, tensor):
        return None
    shape = tuple(int(d) for d in tensor.shape) if tensor.shape is not None else ()
    return np.frombuffer(bytes(model.buffers[tensor.buffer].data), np.float32).reshape(shape)


def _new_tensor(graph: Any, like: int, suffix: str) -> int:
    tensor = copy.copy(graph.tensors[like])
    tensor.name = (tensor.name or b"t") + suffix.encode()
    tensor.buffer = 0
    tensor.quantization = None
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _prelu_ops(model: Any, x: int, alpha: int, y: int, allow_four: bool = True) -> list[Any] | None:
    """PReLU in ops XNNPACK runs in int8. With 0 <= alpha < 1 (1 - alpha > 0 passes through the ReLU):
    ``alpha * x + relu((1 - alpha) * x)``, two MULs and an ADD. Otherwise ``r + alpha * (x - r)`` with
    ``r = relu(x * 1)``, four ops. A ReLU is a MUL with a fused ReLU: XNNPACK leaves to the reference kernels an int8
    RELU whose output range differs from its input's (the quantizer calibrates them apart)."""
    s = schema()
    graph = model.subgraphs[0]
    a = _values(model, graph, alpha)
    if a is None:
        return None
    name = graph.tensors[y].name or b"prelu"
    if np.all((a >= 0) & (a < 1)):
        keep = _constant(model, 1.0 - a, name + b"/one_minus_alpha")
        linear, positive = _new_tensor(graph, y, "/alpha_x"), _new_tensor(graph, y, "/relu_part")
        relu = _op(model, "MUL", [x, keep], [positive])
        relu.builtinOptions.fusedActivationFunction = s.ActivationFunctionType.RELU
        return [_op(model, "MUL", [x, alpha], [linear]), relu, _op(model, "ADD", [linear, positive], [y])]
    if not allow_four:
        return None
    one = _constant(model, np.ones(1, np.float32), name + b"/one")
    r, n, m = (_new_tensor(graph, y, s) for s in ("/relu", "/negative_part", "/scaled"))
    relu = _op(model, "MUL", [x, one], [r])
    relu.builtinOptions.fusedActivationFunction = s.ActivationFunctionType.RELU
    return [relu, _op(model, "SUB", [x, r], [n]), _op(model, "MUL", [n, alpha], [m]), _op(model, "ADD", [r, m], [y])]


def rewrite_minmax_prelu(model: Any) -> int:
    """``max(x, 0) + alpha * min(x, 0)`` (MAXIMUM, MINIMUM, MUL, ADD) -> the three ops of ``_prelu_ops`` where
    0 <= alpha < 1. With other alphas the pattern stays: int8 MINIMUM/MAXIMUM are cheap even on the reference
    kernels once ``share_minmax_params`` has removed the conversions around them (measured with ``bench --ops``;
    moving them to XNNPACK as a MUL with a fused ReLU and a SUB was slower)."""
    graph = model.subgraphs[0]
    ops = graph.operators
    readers = _readers(ops)

    def only_reader(t: int, kind: str) -> int | None:
        found = readers.get(t, [])
        return found[0] if len(found) == 1 and _kind(model, ops[found[0]]) == kind else None

    zero_side: dict[tuple[str, int], int] = {}
    for i, op in enumerate(ops):
        kind = _kind(model, op)
        if kind in ("MAXIMUM", "MINIMUM") and len(op.inputs) == 2:
            a, b = (int(t) for t in op.inputs)
            x = b if _zero_constant(model, graph, a) else a if _zero_constant(model, graph, b) else None
            if x is not None:
                zero_side[kind, x] = i
    replace: dict[int, list[Any]] = {}
    for (kind, x), hi in zero_side.items():
        lo = zero_side.get(("MINIMUM", x)) if kind == "MAXIMUM" else None
        if lo is None:
            continue
        mul = only_reader(int(ops[lo].outputs[0]), "MUL")
        add = only_reader(int(ops[hi].outputs[0]), "ADD")
        if mul is None or add is None or only_reader(int(ops[mul].outputs[0]), "ADD") != add:
            continue
        alpha = next((int(t) for t in ops[mul].inputs if int(t) != int(ops[lo].outputs[0])), None)
        new = _prelu_ops(model, x, alpha, int(ops[add].outputs[0]), allow_four=False) if alpha is not None else None
        if new is not None:
            replace[add] = new  # at the ADD's place: every input it needs is made by then
            replace.update({hi: [], lo: [], mul: []})
    graph.operators = [o for i, op in enumerate(ops) for o in replace.get(i, [op])]
    return sum(1 for v in replace.values() if v)


def rewrite_prelu(model: Any) -> int:
    """``PRELU(x, alpha)`` -> the ops of ``_prelu_ops`` (int8 PRELU runs 8x slower than float on XNNPACK)."""
    graph = model.subgraphs[0]
    out_ops, done = [], 0
    for op in graph.operators:
        new = None
        if _kind(model, op) == "PRELU":
            x, alpha = (int(t) for t in op.inputs[:2])
            new = _prelu_ops(model, x, alpha, int(op.outputs[0]))
        out_ops += new if new is not None else [op]
        done += new is not None
    graph.operators = out_ops
    return done


def fold_pads(model: Any) -> int:
    """``PAD`` by (k-1)/2 on height and width feeding a stride-1, VALID, k x k convolution -> the convolution with
    SAME padding, the PAD gone. The same zeros (the zero point once quantized), one op and one copy of the feature
    map fewer (PAD costs ~9 % of a MobileFaceNet in int8, measured with ``bench --ops``)."""
    s = schema()
    graph = model.subgraphs[0]
    ops = graph.operators
    readers = _readers(ops)
    drop = set()
    for i, op in enumerate(ops):
        if _kind(model, op) != "PAD" or len(op.inputs) < 2:
            continue
        pads = graph.tensors[int(op.inputs[1])]
        if not is_constant(model, pads) or int(op.outputs[0]) in graph.outputs:
            continue
        amounts = np.frombuffer(bytes(model.buffers[pads.buffer].data), np.int32 if pads.type == 2 else np.int64)
        users = readers.get(int(op.outputs[0]), [])
        if len(users) != 1 or amounts.size != 8:
            continue
        conv = ops[users[0]]
        opts = conv.builtinOptions
        if _kind(model, conv) not in ("CONV_2D", "DEPTHWISE_CONV_2D") or int(conv.inputs[0]) != int(op.outputs[0]):
            continue
        kernel = graph.tensors[int(conv.inputs[1])].shape
        kh, kw = int(kernel[1]), int(kernel[2])
        want = [0, 0, (kh - 1) // 2, (kh - 1) // 2, (kw - 1) // 2, (kw - 1) // 2, 0, 0]
        if (opts.padding != s.Padding.VALID or opts.strideH != 1 or opts.strideW != 1 or kh % 2 == 0 or kw % 2 == 0
                or opts.dilationHFactor != 1 or opts.dilationWFactor != 1 or amounts.tolist() != want):
            continue
        opts.padding = s.Padding.SAME
        conv.inputs = np.array([int(op.inputs[0]), *[int(t) for t in conv.inputs[1:]]], np.int32)
        drop.add(i)
    graph.operators = [op for i, op in enumerate(ops) if i not in drop]
    return len(drop)


def int8_friendly(data: bytes) -> tuple[bytes, dict[str, int]]:
    """The float model with its PReLUs in XNNPACK-friendly ops and its stride-1 PADs folded into the convolutions,
    and how many of each pattern were rewritten."""
    model = read_graph(data)
    counts = {"min/max PReLU": rewrite_minmax_prelu(model), "PRELU": rewrite_prelu(model), "PAD": fold_pads(model)}
    if not any(counts.values()):
        return data, counts
    drop_unused_tensors(model)
    return pack(model), counts


def _per_tensor_int8(tensor: Any) -> bool:
    q = tensor.quantization
    return tensor.type == 9 and q is not None and q.scale is not None and len(q.scale) == 1


def share_minmax_params(model: Any) -> int:
    """After quantization: ``max(x, 0)`` and ``min(x, 0)`` run in int8 on x's own scale, not behind conversions.

    The LiteRT quantizer requantizes x before an int8 MAXIMUM (a QUANTIZE op) and leaves MINIMUM in float between a
    DEQUANTIZE and a QUANTIZE: three extra ops per PReLU. Both results fit x's range, so both ops can read x
    directly, compare against x's zero point, and give their output x's scale and zero point; the ops that read
    that output take its quantization from the tensor. Returns how many MIN/MAX ops were rewired."""
    graph = model.subgraphs[0]
    ops = graph.operators
    maker = {int(t): i for i, op in enumerate(ops) for t in op.outputs}
    readers = _readers(ops)
    drop: set[int] = set()
    done = 0
    for i, op in enumerate(ops):
        kind = _kind(model, op)
        if kind not in ("MAXIMUM", "MINIMUM") or len(op.inputs) != 2:
            continue
        a, b = (int(t) for t in op.inputs)
        const, var = (a, b) if is_constant(model, graph.tensors[a]) else (b, a)
        if not is_constant(model, graph.tensors[const]) or is_constant(model, graph.tensors[var]):
            continue
        out = int(op.outputs[0])
        src_op = maker.get(var)
        if src_op is None or _kind(model, ops[src_op]) not in ("QUANTIZE", "DEQUANTIZE"):
            continue
        source = int(ops[src_op].inputs[0])
        bypass = [src_op]
        if graph.tensors[out].type == 0:  # float MINIMUM: its int8 result is the QUANTIZE that reads it
            after = readers.get(out, [])
            if len(after) != 1 or _kind(model, ops[after[0]]) != "QUANTIZE":
                continue
            bypass.append(after[0])
            out = int(ops[after[0]].outputs[0])
            zero_ok = _zero_constant(model, graph, const)
        else:
            q = graph.tensors[const].quantization
            values = np.frombuffer(bytes(model.buffers[graph.tensors[const].buffer].data), np.int8)
            zero_ok = q is not None and q.zeroPoint is not None and bool(np.all(values == int(q.zeroPoint[0])))
        if not zero_ok or not _per_tensor_int8(graph.tensors[source]) or not _per_tensor_int8(graph.tensors[out]):
            continue
        if len(readers.get(var, [])) != 1:  # the conversion feeds something else too: keep it
            continue
        src = graph.tensors[source]
        graph.tensors[out].quantization = copy.deepcopy(src.quantization)
        zero = _constant(model, np.array(int(src.quantization.zeroPoint[0])), b"edgeface/zero_q", src.quantization)
        new = _op(model, kind, [source, zero], [out])
        ops[i] = new
        drop.update(bypass)
        done += 1
    graph.operators = [op for j, op in enumerate(ops) if j not in drop]
    return done


def int8_minmax(data: bytes) -> tuple[bytes, int]:
    """A quantized model with ``share_minmax_params`` applied; (bytes, ops rewired)."""
    model = read_graph(data)
    done = share_minmax_params(model)
    if not done:
        return data, 0
    drop_unused_tensors(model)
    return pack(model), done
