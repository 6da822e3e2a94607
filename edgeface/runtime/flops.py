"""Count the FLOPs of a .tflite graph from its ops and tensor shapes: no TensorFlow needed on the device.

Counts 2 FLOPs per multiply-add of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV and
BATCH_MATMUL (the ops that carry >99 % of a CNN's work); element-wise ops are ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeface.runtime.interpreter import Model


def _macs(op: dict, shapes: dict[int, tuple[int, ...]]) -> int:
    name = op["op_name"]
    ins = [i for i in op["inputs"] if i >= 0]
    out = shapes.get(int(op["outputs"][0]), ())
    if not out or len(ins) < 2:
        return 0
    weights = shapes.get(int(ins[1]), ())
    out_elems = int(np.prod(out))
    if name == "CONV_2D" and len(weights) == 4:  # weights (O, kh, kw, I)
        return out_elems * weights[1] * weights[2] * weights[3]
    if name == "DEPTHWISE_CONV_2D" and len(weights) == 4:  # weights (1, kh, kw, C*M)
        return out_elems * weights[1] * weights[2]
    if name == "FULLY_CONNECTED" and len(weights) == 2:  # weights (O, I)
        return out_elems * weights[1]
    if name == "TRANSPOSE_CONV":
        w = shapes.get(int(ins[1]), ())
        x = shapes.get(int(ins[2]), ()) if len(ins) > 2 else ()
        return int(np.prod(x)) * w[0] * w[1] * w[2] if len(w) == 4 and x else 0
    if name == "BATCH_MATMUL":
        a = shapes.get(int(ins[0]), ())
        return out_elems * a[-1] if a else 0
    return 0


def flops_per_op(path: str | Path, content: bytes | None = None,
                 input_shape: tuple[int, ...] | None = None) -> dict[int, int]:
    """Op index (in the file's subgraph 0) -> FLOPs, for the ops that do multiply-adds; ``input_shape`` sizes a
    fully convolutional model (a detector) first."""
    # the file's own nodes, no delegate node
    interp = Model(path, xnnpack=False, content=content, input_shape=input_shape).interpreter
    shapes = {int(t["index"]): tuple(int(d) for d in t["shape"]) for t in interp.get_tensor_details()}
    return {int(op["index"]): 2 * m for op in interp._get_ops_details() if (m := _macs(op, shapes))}


def count_tflite_flops(path: str | Path) -> int:
    return sum(flops_per_op(path).values())
