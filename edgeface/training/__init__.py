"""The training half: everything here may import TensorFlow (tf-keras, tensorflow-model-optimization), and nothing
outside it, but the command line's training commands, imports it. Models (``models``), datasets and training loops
(``train``), compression (``compress``), export to .tflite (``export``), importing other formats
(``model_import``) and the compare/optimise search (``compare``)."""

from pathlib import Path

from edgeface.errors import EdgefaceError


def check_keras_source(path: Path) -> Path:
    """Refuse, at once and before TensorFlow loads (20 s), a file ``export`` cannot take, naming the command that
    does: a .tflite goes to ``quantize`` (or ``info``/``eval``/``bench`` as it is); ONNX and other formats to
    ``import``."""
    path = Path(path)
    if path.suffix == ".tflite":
        raise EdgefaceError(f"{path.name} is already a .tflite model: 'edgeface quantize' quantizes a float one, "
                            "'edgeface eval', 'bench' and 'info' take it as it is")
    if path.suffix in (".onnx", ".pb", ".pt", ".pth"):
        raise EdgefaceError(f"{path.name} is not a Keras model: 'edgeface import' converts ONNX and SavedModel "
                            "files to .tflite")
    if not path.exists():
        raise EdgefaceError(f"model not found: {path}")
    return path
