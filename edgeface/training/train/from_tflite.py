"""Warm-start a Keras network from a float32 ``.tflite`` of the same architecture (``--init model.tflite``).

Why: the shipped default model is only kept as ``.tflite``; its Keras checkpoint is a training artefact. The
converter folded every BatchNormalization into its convolution's kernel and bias, so the weights come back in two
steps. Kernels are copied in graph order. Then each BN is "unfolded": its running statistics are set to those of
its convolution's raw output on real faces, and gamma/beta so that inference is exactly the folded network again.
A BN set to identity would be exact in inference too, but training-mode BN normalises by batch statistics and
would discard every learned scale on the first step; with measured statistics training starts where the file is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.runtime.graph import op_kind, read_graph
from edgeface.training.tf_setup import keras

_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def folded_weights(path: str | Path) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(op kind, kernel in Keras layout, bias or None) of every convolution / dense op, in graph order."""
    try:
        model = read_graph(Path(path).read_bytes())
    except OSError as exc:
        raise EdgefaceError(f"cannot read {path}: {exc.strerror}") from None
    graph = model.subgraphs[0]

    def const(index: int) -> np.ndarray | None:
        if index < 0:
            return None
        tensor = graph.tensors[index]
        data = model.buffers[tensor.buffer].data
        if data is None or not len(data):
            return None
        if tensor.type != 0:
            raise EdgefaceError(f"{path} is quantized: --init needs the float32 export")
        return np.frombuffer(bytes(bytearray(data)), np.float32).reshape([int(d) for d in tensor.shape])

    out = []
    for op in graph.operators:
        kind = op_kind(model, op)
        if kind not in _CONVS:
            continue
        kernel, bias = const(op.inputs[1]), const(op.inputs[2]) if len(op.inputs) > 2 else None
        if kernel is None:
            raise EdgefaceError(f"{path}: a {kind} reads weights computed at run time; cannot warm-start from it")
        if kind == "CONV_2D":  # (out, kh, kw, in) -> (kh, kw, in, out)
            kernel = kernel.transpose(1, 2, 3, 0)
        elif kind == "DEPTHWISE_CONV_2D":  # (1, kh, kw, in) -> (kh, kw, in, 1)
            kernel = kernel[0][..., None]
        else:  # FULLY_CONNECTED (out, in) -> a 1x1 conv (1, 1, in, out)
            kernel = kernel.T[None, None]
        out.append((kind, kernel, bias))
    return out


def _conv_layers(model: keras.Model) -> list[tuple[keras.layers.Layer, keras.layers.Layer | None]]:
    """(conv or dense layer, the BatchNormalization right after it or None), in graph order."""
    pairs = []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
            after = [n.outbound_layer for n in layer._outbound_nodes]
            bn = after[0] if len(after) == 1 and isinstance(after[0], keras.layers.BatchNormalization) else None
            pairs.append((layer, bn))
    return pairs


def load_tflite_weights(model: keras.Model, path: str | Path, faces: np.ndarray) -> None:
    """Set ``model`` to compute what the float ``.tflite`` at ``path`` computes; ``faces`` (N, H, W, 3) are
    normalised input faces for the BN statistics (a few hundred suffice)."""
    folded = folded_weights(path)
    layers = _conv_layers(model)
    if len(folded) != len(layers):
        raise EdgefaceError(f"--init {path}: {len(folded)} convolutions in the file, {len(layers)} in "
                            f"{model.name}: not the same architecture")
    for (layer, bn), (_, kernel, bias) in zip(layers, folded, strict=True):
        shape = tuple(int(d) for d in layer.get_weights()[0].shape)
        if kernel.shape != shape:
            kernel = kernel.reshape(shape) if kernel.size == np.prod(shape) else kernel
        if kernel.shape != shape:
            raise EdgefaceError(f"--init {path}: {layer.name} takes {shape}, the file has {kernel.shape}: "
                                "another width or embedding size")
        if bias is None:
            depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
            bias = np.zeros(int(np.prod(shape[2:])) if depthwise else shape[-1], np.float32)
        weights = [kernel] + ([bias] if layer.use_bias else [])
        layer.set_weights(weights)
        if bn is not None:  # identity first: exact in inference, statistics come next
            eps = bn.epsilon
            ones = np.ones_like(bias)
            bn.set_weights([ones, bias, np.zeros_like(bias), ones - eps])
        elif not layer.use_bias and np.abs(bias).max() > 0:
            raise EdgefaceError(f"--init {path}: {layer.name} has a bias in the file and none in the model")
    with_bn = [(layer, bn) for layer, bn in layers if bn is not None]
    probe = keras.Model(model.inputs, [layer.output for layer, _ in with_bn])
    raw = probe.predict(faces, batch_size=64, verbose=0)
    raw = raw if isinstance(raw, list) else [raw]
    for (_, bn), values in zip(with_bn, raw, strict=True):
        flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
        mean, var = flat.mean(0), flat.var(0)
        _, beta, _, _ = bn.get_weights()
        bn.set_weights([np.sqrt(var + bn.epsilon).astype(np.float32), (beta + mean).astype(np.float32),
                        mean.astype(np.float32), var.astype(np.float32)])
