"""Load and run a .tflite model with transparent quantized I/O.

Backends are tried in order ai-edge-litert -> tflite_runtime (-> tensorflow.lite, only with
EDGEFACE_ALLOW_TF_RUNTIME=1) so a Raspberry Pi needs no TensorFlow; the one in use is reported in
``Model.backend``. Callers always pass and receive float32 arrays:
int8/uint8 inputs are quantized with the tensor's own scale/zero point and outputs dequantized.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.tflite_metadata import check_tflite_file


def _interpreter_classes() -> list[tuple[str, Any, Any]]:
    """(backend name, Interpreter class, OpResolverType or None) for every runtime that imports here."""
    found = []
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        found.append(("ai-edge-litert", Interpreter, OpResolverType))
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter, OpResolverType  # type: ignore[import-not-found]

        found.append(("tflite_runtime", Interpreter, OpResolverType))
    except ImportError:
        pass
    if not found and os.environ.get("EDGEFACE_ALLOW_TF_RUNTIME") == "1":  # opt-in: the device never loads TF
        try:
            import tensorflow as tf  # type: ignore[import-not-found]

            found.append(("tensorflow.lite", tf.lite.Interpreter, tf.lite.experimental.OpResolverType))
        except ImportError:
            pass
    return found


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Hide what the TFLite runtime's C++ prints on file descriptor 2 ("INFO: Created TensorFlow Lite XNNPACK
    delegate for CPU.", once per interpreter; no setting turns it off). Python-side errors still surface as
    exceptions carrying the runtime's message. EDGEFACE_DEBUG=1 keeps the native output."""
    if os.environ.get("EDGEFACE_DEBUG"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@dataclass(frozen=True)
class TensorSpec:
    """What a caller needs to know about one input or output tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.dtype in ("int8", "uint8", "int16") and self.scale > 0


def quantize_to(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float values -> ``spec``'s dtype, through its scale and zero point when it is quantized."""
    if spec.quantized:
        info = np.iinfo(spec.dtype)
        q = np.round(x / spec.scale + spec.zero_point)
        return np.clip(q, info.min, info.max).astype(spec.dtype)
    return x.astype(spec.dtype, copy=False)


def tensor_spec(detail: dict) -> TensorSpec:
    scale, zero = detail.get("quantization", (0.0, 0))
    return TensorSpec(detail["name"], tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name,
                      float(scale), int(zero))


class Model:
    """A loaded .tflite model: ``model(x)`` takes a float batch and returns the float outputs (first output).

    The interpreter is created once and reused; batches are run one item at a time because many TFLite
    models are exported with a fixed batch of 1.
    """

    def __init__(self, path: str | Path, threads: int = 1, xnnpack: bool = True, content: bytes | None = None,
                 quiet_fallback: bool = False, input_shape: tuple[int, ...] | None = None) -> None:
        """``input_shape``: the first shape to plan a fully convolutional model for. Its file stores 1x1, which
        some kernels refuse at load time (XNNPACK on arm64 leaves those ops to the built-in kernels)."""
        if threads < 1:
            raise EdgefaceError(f"--threads must be at least 1, got {threads}")
        self.path = Path(path)
        self.content = check_tflite_file(self.path) if content is None else content
        classes = _interpreter_classes()
        if not classes:
            raise EdgefaceError("no TFLite runtime found: pip install ai-edge-litert")
        self.backend, interpreter_cls, resolver = classes[0]
        if self.backend != "ai-edge-litert":
            print(f"edgeface: ai-edge-litert not installed, running on {self.backend}", file=sys.stderr)
        self.threads = threads
        self.xnnpack = xnnpack
        self.quiet_fallback = quiet_fallback
        self.first_shape = input_shape
        self.interpreter = self._create(interpreter_cls, resolver, xnnpack)
        self.inputs = [tensor_spec(d) for d in self.interpreter.get_input_details()]
        self.outputs = [tensor_spec(d) for d in self.interpreter.get_output_details()]
        self._in_index = self.interpreter.get_input_details()[0]["index"]
        self._out_indices = [d["index"] for d in self.interpreter.get_output_details()]

    def _create(self, interpreter_cls: Any, resolver: Any, xnnpack: bool) -> Any:
        kwargs: dict[str, Any] = {"model_content": self.content, "num_threads": self.threads}
        if not xnnpack:
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with native_stderr_silenced():
                interpreter = interpreter_cls(**kwargs)
                if self.first_shape is not None:
                    index = interpreter.get_input_details()[0]["index"]
                    interpreter.resize_tensor_input(index, list(self.first_shape))
                interpreter.allocate_tensors()
            return interpreter
        except (ValueError, RuntimeError) as exc:
            if xnnpack and "delegate" in str(exc).lower():
                # Sparse + int8 graphs are sometimes refused by XNNPACK: run them on the reference kernels.
                if not self.quiet_fallback:
                    print(f"edgeface: XNNPACK could not run {self.path.name}; using the built-in kernels",
                          file=sys.stderr)
                self.xnnpack = False
                return self._create(interpreter_cls, resolver, xnnpack=False)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EdgefaceError(f"cannot load TFLite model {self.path}: {first}") from None

    def resize_input(self, shape: tuple[int, ...]) -> None:
        """Give a fully convolutional model a new input shape (a detector at another frame size)."""
        shape = tuple(int(d) for d in shape)
        if shape == self.input.shape:
            return
        try:
            self.interpreter.resize_tensor_input(self._in_index, list(shape))
            with native_stderr_silenced():
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise EdgefaceError(f"{self.path.name} cannot take input {list(shape)}: {str(exc).strip()[:200]}") from None
        self.inputs = [tensor_spec(d) for d in self.interpreter.get_input_details()]
        self.outputs = [tensor_spec(d) for d in self.interpreter.get_output_details()]

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    @property
    def output(self) -> TensorSpec:
        return self.outputs[0]

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float -> the input tensor's dtype, using its quantization parameters when it has them."""
        return quantize_to(x, self.input)

    def dequantize(self, y: np.ndarray, spec: TensorSpec) -> np.ndarray:
        if spec.quantized:
            return (y.astype(np.float32) - spec.zero_point) * spec.scale
        return y.astype(np.float32, copy=False)

    def invoke(self, item: np.ndarray) -> list[np.ndarray]:
        """Run one already-quantized input of the exact input shape; return every output as float32."""
        self.interpreter.set_tensor(self._in_index, item)
        self.interpreter.invoke()
        pairs = zip(self._out_indices, self.outputs, strict=True)
        return [self.dequantize(self.interpreter.get_tensor(i), s) for i, s in pairs]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Float batch (N, ...input shape without batch) -> float first output (N, ...)."""
        batch = np.asarray(batch)
        expected = self.input.shape[1:]
        if batch.shape[1:] != expected:
            raise EdgefaceError(
                f"{self.path.name} expects input {list(expected)}, got {list(batch.shape[1:])}")
        if len(batch) == 0:
            return np.zeros((0, *self.output.shape[1:]), np.float32)
        q = self.quantize_input(batch)
        rows = [self.invoke(q[i : i + 1])[0][0] for i in range(len(q))]
        return np.stack(rows)
