"""Options and choices shared by several commands, declared once."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgeface.manifest import check_threshold
from edgeface.vision.detector_options import (
    DETECT_SIZE_HELP,
    DETECTOR_HELP,
    MIN_FACE_HELP,
    DetectorName,
    check_detect_size,
    check_min_face,
)


def checked(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A parse-time callback running the library's own check of an option (its one-line error), before any
    model loads: the rule lives in the library, every command that takes the option gets it."""
    def callback(value: Any) -> Any:
        return value if value is None else check(value)
    return callback

ModelArg = Annotated[Optional[str], typer.Argument(
    help="a .tflite file, 'dlib', or a Keras model; default: the shipped model")]


Threads = Annotated[int, typer.Option("--threads", "-t", help="CPU threads for inference")]


Json = Annotated[bool, typer.Option("--json", help="print machine-readable JSON instead of a table")]


InputMean = Annotated[Optional[float], typer.Option(
    help="input = (pixel - mean) * scale; default from the manifest, else 0")]


InputScale = Annotated[Optional[float], typer.Option(
    help="input = (pixel - mean) * scale; default from the manifest, else 1")]


Channels = Annotated[Optional[str], typer.Option(help="RGB or BGR; default from the manifest, else RGB")]


class Layout(str, Enum):
    auto = "auto"
    folders = "folders"
    flat = "flat"
    celeba = "celeba"


class StrategyName(str, Enum):
    none = "none"
    mirrored = "mirrored"
    multiworker = "multiworker"


class Head(str, Enum):
    softmax = "softmax"
    arcface = "arcface"
    cosface = "cosface"


class QuantMode(str, Enum):
    dynamic = "dynamic"
    float16 = "float16"
    int8 = "int8"
    qat = "qat"
    qat_prune_preserve = "qat-prune-preserve"


class Recipe(str, Enum):
    dynamic = "dynamic"
    weight_only = "weight-only"
    int8 = "int8"
    int16x8 = "int16x8"


class AlignmentName(str, Enum):
    yunet_5pt = "yunet-5pt"
    blazeface_4pt = "blazeface-4pt"


class Precision(str, Enum):
    float32 = "float32"
    float16 = "float16"
    dynamic = "dynamic"
    int8 = "int8"


class IOType(str, Enum):
    int8 = "int8"
    float = "float"


class Target(str, Enum):
    latency = "latency"
    size = "size"


class ExportFormat(str, Enum):
    tflite = "tflite"


DetectorOpt = Annotated[DetectorName, typer.Option("--detector", help=DETECTOR_HELP)]


DetectSize = Annotated[int, typer.Option("--detect-size", help=DETECT_SIZE_HELP, callback=checked(check_detect_size))]


MinFace = Annotated[int, typer.Option("--min-face", help=MIN_FACE_HELP, callback=checked(check_min_face))]


ModelOpt = Annotated[Optional[str], typer.Option(
    help="embedding model: a .tflite, or a shipped one by name (single, small); default: the shipped default "
         "model")]


ThresholdOpt = Annotated[Optional[float], typer.Option(
    help="cosine threshold; default: the model's FAR 1e-3 threshold from its manifest",
    callback=checked(check_threshold))]


KerasIn = Annotated[Path, typer.Argument(help="a tf_keras model (.keras/.h5); ours or yours")]


KerasOut = Annotated[Path, typer.Option("--out", "-o", help="compressed Keras model (.keras) + manifest")]


FineData = Annotated[Optional[list[Path]], typer.Option("--data", help="prepared face folders to fine-tune on")]


FineEpochs = Annotated[float, typer.Option(help="fine-tuning epochs over the face set (distillation)")]


FineFaces = Annotated[int, typer.Option(help="faces drawn from --data for fine-tuning")]


LFWDir = Annotated[Path, typer.Option(help="LFW image root")]


PairsFile = Annotated[Path, typer.Option(help="LFW View 2 pairs.txt")]


GalleryOpt = Annotated[Optional[Path], typer.Option("--gallery", help="gallery file (default: in the user data dir)")]


DetectEvery = Annotated[int, typer.Option(
    help="video: detect the whole frame and embed every N frames, following the known faces in between (~0.5 ms a "
         "face); a new face is found within N-1 frames, a lost one makes the next frame a full one")]
