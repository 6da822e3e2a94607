"""Keras -> .tflite (+ quantization) with its manifest inside, written atomically as one file.

Quantization modes: ``float32`` (none), ``float16`` (fp16 weights), ``dynamic`` (int8 weights, float
activations), ``int8`` (full integer with a representative dataset of aligned faces; ``--io int8`` makes the
inputs/outputs int8 too, ``--io float`` keeps float I/O with quantize/dequantize ops inside).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from edgeface.choices import MODES
from edgeface.errors import EdgefaceError
from edgeface.manifest import InputSpec, Manifest, load_manifest, write_model
from edgeface.training.tf_setup import keras, tf


def calibration_faces(data: Sequence[str | Path], count: int, seed: int = 0) -> np.ndarray:
    """``count`` aligned faces (uint8 RGB) drawn evenly from prepared folders, for int8 calibration."""
    from edgeface.training.train.dataset import prepared_faces
    from edgeface.vision.image import read_image

    paths, _ = prepared_faces(data)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(paths), size=min(count, len(paths)), replace=False)
    return np.stack([read_image(paths[i]) for i in sorted(chosen)])


def representative(faces: np.ndarray, spec: InputSpec) -> Iterator[list[np.ndarray]]:
    from edgeface.vision.embed import preprocess

    for face in faces:
        yield [preprocess(face[None], spec).astype(np.float32)]


def flip_averaged(model: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
    """``model`` run on the face and on its mirror image, the two embeddings summed (every reader normalises).
    Why inside the file: every consumer (recognize, serve, the API, eval, bench) then gets the better embedding and
    pays its real cost, with nothing to remember at run time; the two branches share one copy of the weights.
    Why the raw sum and not the sum of unit vectors: in int8 the L2_NORMALIZATION output has a fixed 1/128 step,
    which cost dlib's port 0.13 pp on LFW (99.08 against 99.22 %)."""
    def forward(x: tf.Tensor) -> tf.Tensor:
        return model(x, training=False) + model(tf.reverse(x, axis=[2]), training=False)

    return forward


def convert(model: keras.Model, mode: str, spec: InputSpec, calibration: np.ndarray | None = None,
            io: str = "int8", flip: bool = False) -> bytes:
    """The TFLite flatbuffer of ``model`` in quantization ``mode`` (``flip``: see ``flip_averaged``)."""
    if mode not in MODES:
        raise EdgefaceError(f"unknown quantization {mode!r}; choose one of {', '.join(MODES)}")
    shape = [1, *model.inputs[0].shape[1:]]
    forward = flip_averaged(model) if flip else (lambda x: model(x, training=False))
    fn = tf.function(forward).get_concrete_function(tf.TensorSpec(shape, tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    # convert the frozen function directly: by default the converter first writes and reloads a SavedModel, which
    # took 14 of every 15 s of an export of a small MobileFaceNet and changes no byte of the graph (measured in
    # float32 and int8: identical outputs). The file then has no signature; ``runtime.graph.modernised`` adds one
    # where the LiteRT quantizer needs it.
    converter.experimental_lower_to_saved_model = False
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        if calibration is None or len(calibration) == 0:
            raise EdgefaceError("int8 export needs calibration faces: pass --calib-data DIR (prepared faces)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: representative(calibration, spec)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io == "int8":
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        elif io != "float":
            raise EdgefaceError(f"--io must be int8 or float, got {io!r}")
    try:
        return converter.convert()
    except Exception as exc:  # the converter raises assorted types; name the problem in one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise EdgefaceError(f"TFLite conversion failed: {first}") from None


def export(model: keras.Model | str | Path, out: str | Path, mode: str = "float32",
           calibration: np.ndarray | None = None, io: str = "int8", manifest: Manifest | None = None,
           step: dict | None = None, flip: bool = False) -> tuple[Path, Manifest]:
    """Export a Keras model (object or file) to ``out`` + ``out.json``; returns (path, manifest). ``flip`` builds
    the flip-averaged file (``flip_averaged``): twice the FLOPs, recorded in the manifest and its chain."""
    from edgeface.training.models.registry import INPUT_SPEC, count_flops
    from edgeface.training.train.keras_io import load_keras

    if isinstance(model, (str, Path)):
        manifest = manifest or load_manifest(model)
        model = load_keras(model)
    out = Path(out)
    if out.suffix != ".tflite":
        raise EdgefaceError(f"output must end in .tflite, got {out.name}")
    base = manifest or Manifest(input=INPUT_SPEC)
    content = convert(model, mode, base.input, calibration, io, flip)
    from edgeface.runtime.interpreter import Model

    runtime = Model(out, content=content)
    quant = {role: {"dtype": t.dtype, "scale": t.scale, "zero_point": t.zero_point}
             for role, t in (("input", runtime.input), ("output", runtime.output)) if t.quantized}
    result = Manifest(
        input=InputSpec(size=int(model.inputs[0].shape[1]), channels=base.input.channels, mean=base.input.mean,
                        scale=base.input.scale),
        embedding_size=int(model.outputs[0].shape[-1]), params=int(model.count_params()),
        flops=count_flops(model) * (2 if flip else 1), dtype=mode, quantization=quant, architecture=base.architecture,
        alignment=base.alignment,
        threshold=base.threshold, threshold_far=base.threshold_far, threshold_source=base.threshold_source,
        chain=[*base.chain, {"step": "export", "quantize": mode, **({"io": io} if mode == "int8" else {}),
                             **({"flip": True} if flip else {}), **(step or {})}],
        metrics={})
    return write_model(out, content, result), result

