"""Where a .tflite file's bytes go: weights, biases, other constants, quantization parameters, tensor names,
metadata, signatures, and the flatbuffer's own tables.

Why: an int8 file is not a quarter of its float file (edgeface's is 0.345), and the reason is in the parts that do
not shrink with the weights: int32 biases, a float32 scale and an int64 zero point per output channel, and names.
"""

from __future__ import annotations

from edgeface.runtime.graph import WEIGHTED_OPS, list_ops, read_graph


def _quant_bytes(q: object) -> int:
    if q is None:
        return 0
    total = 0
    for field, width in (("scale", 4), ("zeroPoint", 8), ("min", 4), ("max", 4)):
        values = getattr(q, field, None)
        total += 0 if values is None else len(values) * width
    return total


def byte_breakdown(content: bytes) -> dict[str, int]:
    """Bytes per part of the file; ``flatbuffer tables`` is what is left (offsets, vtables, shapes, op options)."""
    model = read_graph(content)
    graph = model.subgraphs[0]
    role: dict[int, str] = {}
    for op in list_ops(model):
        if op.kind in WEIGHTED_OPS:
            inputs = [int(t) for t in graph.operators[op.index].inputs]
            if len(inputs) > 1 and inputs[1] >= 0:
                role.setdefault(inputs[1], "weights")
            if len(inputs) > 2 and inputs[2] >= 0:
                role.setdefault(inputs[2], "biases")
    parts = {"weights": 0, "biases": 0, "other constants": 0, "quantization parameters": 0, "tensor names": 0,
             "metadata": 0, "signatures": 0}
    counted_buffers = set()
    for i, tensor in enumerate(graph.tensors):
        parts["tensor names"] += len(tensor.name or b"")
        parts["quantization parameters"] += _quant_bytes(tensor.quantization)
        buf = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
        if buf is not None and buf.data is not None and tensor.buffer not in counted_buffers:
            counted_buffers.add(tensor.buffer)
            parts[role.get(i, "other constants")] += len(buf.data)
    for meta in model.metadata or []:
        buf = model.buffers[meta.buffer]
        size = 0 if buf.data is None else len(buf.data)
        parts["metadata"] += size + len(meta.name or b"")
        parts[f"metadata: {(meta.name or b'?').decode(errors='replace')}"] = size
    for sig in model.signatureDefs or []:
        parts["signatures"] += len(sig.signatureKey or b"") + sum(
            len(m.name or b"") + 8 for m in list(sig.inputs or []) + list(sig.outputs or []))
    top = sum(v for k, v in parts.items() if not k.startswith("metadata: "))
    parts["flatbuffer tables"] = max(0, len(content) - top)
    parts["total"] = len(content)
    return parts
