"""Options and choices shared by several commands, declared once."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgeface.choices import (
    ALIGNMENTS,
    EXPORT_FORMATS,
    HEADS,
    IO_TYPES,
    LAYOUTS,
    MODES,
    QUANT_MODES,
    RECIPES,
    STRATEGIES,
    TARGETS,
    TEMPLATE_MODES,
    VIEW_KINDS,
    choice_enum,
)
from edgeface.default_model import shipped_names
from edgeface.errors import EdgefaceError
from edgeface.manifest import check_threshold
from edgeface.recognize.config import (
    PipelineConfig,
    check_frames,
    check_turn,
)
from edgeface.recognize.sinks import EventOptions
from edgeface.runtime.threads import check_threads, check_workers
from edgeface.vision.detector_options import (
    DEFAULT_MAX_TURN,
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

def finite(param: typer.CallbackParam, value: float | None) -> float | None:
    """nan and inf are refused for every float option: ``--max-seconds nan`` would otherwise mean "no limit"."""
    if value is not None and not math.isfinite(value):
        raise EdgefaceError(f"--{param.name.replace('_', '-')} must be a finite number, got {value}")
    return value

ModelArg = Annotated[Optional[str], typer.Argument(
    help="a .tflite file, 'dlib', or a Keras model; default: the shipped model")]


Threads = Annotated[int, typer.Option("--threads", "-t", help="CPU threads for inference (1 to 4 per core)",
                                      callback=checked(check_threads))]


Workers = Annotated[int, typer.Option("--workers", help="worker processes side by side (1 to 4 per core)",
                                      callback=checked(check_workers))]


Json = Annotated[bool, typer.Option("--json", help="print machine-readable JSON instead of a table")]


InputMean = Annotated[Optional[float], typer.Option(
    help="input = (pixel - mean) * scale; default from the manifest, else 0", callback=finite)]


InputScale = Annotated[Optional[float], typer.Option(
    help="input = (pixel - mean) * scale; default from the manifest, else 1", callback=finite)]


Channels = Annotated[Optional[str], typer.Option(help="RGB or BGR; default from the manifest, else RGB")]


Layout = choice_enum("Layout", LAYOUTS)
StrategyName = choice_enum("StrategyName", STRATEGIES)
Head = choice_enum("Head", HEADS)
QuantMode = choice_enum("QuantMode", QUANT_MODES)
Recipe = choice_enum("Recipe", RECIPES)
AlignmentName = choice_enum("AlignmentName", ALIGNMENTS)
Precision = choice_enum("Precision", MODES)
IOType = choice_enum("IOType", IO_TYPES)
Target = choice_enum("Target", TARGETS)
TemplateMode = choice_enum("TemplateMode", TEMPLATE_MODES)
ExportFormat = choice_enum("ExportFormat", EXPORT_FORMATS)
ViewKind = choice_enum("ViewKind", VIEW_KINDS)


DetectorOpt = Annotated[DetectorName, typer.Option("--detector", help=DETECTOR_HELP)]


DetectSize = Annotated[int, typer.Option("--detect-size", help=DETECT_SIZE_HELP, callback=checked(check_detect_size))]


MinFace = Annotated[int, typer.Option("--min-face", help=MIN_FACE_HELP, callback=checked(check_min_face))]


ModelOpt = Annotated[Optional[str], typer.Option(
    help=f"embedding model: a .tflite file, or a shipped model by its name ({', '.join(shipped_names())}); "
         "default: the shipped default model")]


ThresholdOpt = Annotated[Optional[float], typer.Option(
    help="cosine threshold; default: the model's FAR 1e-3 threshold from its manifest",
    callback=checked(check_threshold))]


KerasIn = Annotated[Path, typer.Argument(help="a tf_keras model (.keras/.h5); ours or yours")]


KerasOut = Annotated[Path, typer.Option("--out", "-o", help="compressed Keras model (.keras) + manifest")]


FineData = Annotated[Optional[list[Path]], typer.Option("--data", help="prepared face folders to fine-tune on")]


FineEpochs = Annotated[float, typer.Option(help="fine-tuning epochs over the face set (distillation)", callback=finite)]


FineFaces = Annotated[int, typer.Option(help="faces drawn from --data for fine-tuning")]


LFWDir = Annotated[Path, typer.Option(help="LFW image root")]


PairsFile = Annotated[Path, typer.Option(help="LFW View 2 pairs.txt")]


GalleryOpt = Annotated[Optional[Path], typer.Option("--gallery", help="gallery file (default: in the user data dir)")]


DetectEvery = Annotated[int, typer.Option(
    help="video: detect the whole frame and embed every N frames, following the known faces in between (~0.5 ms a "
         "face); a new face is found within N-1 frames, a lost one makes the next frame a full one")]


Smooth = Annotated[int, typer.Option(help="decide on the mean embedding of a face track's last N frames",
                                     callback=checked(lambda v: check_frames("--smooth", v)))]
Confirm = Annotated[int, typer.Option(help="name a face track once it matched the same person in N frames in a row "
                                           "(video and cameras; photos at once)",
                                      callback=checked(lambda v: check_frames("--confirm", v)))]
MaxTurn = Annotated[Optional[float], typer.Option(
    help="faces turned further (nose tip offset in half eye-distances, 1 ~ 40 degrees) are reported unknown without "
         f"matching; default: the model's, else {DEFAULT_MAX_TURN}", callback=checked(check_turn))]


LightGates = Annotated[bool, typer.Option(
    help="turn away faces too dark, too unevenly lit, too blurred or too noisy for the model to hold its "
         "false-accept rate (the limits in its manifest), with the reason")]
# name -> (annotation, default) of every pipeline setting a command may take: the annotation declared once here,
# the default PipelineConfig's own; given to a command by ``pipeline_options`` and collected into one PipelineConfig
PIPELINE_ANNOTATIONS: dict[str, Any] = {
    "model": ModelOpt, "threshold": ThresholdOpt, "detector": DetectorOpt, "detect_size": DetectSize,
    "min_face": MinFace, "threads": Threads, "input_mean": InputMean, "input_scale": InputScale, "channels": Channels,
    "smooth": Smooth, "confirm": Confirm, "max_turn": MaxTurn, "detect_every": DetectEvery,
    "light_gates": LightGates,
}
PIPELINE_OPTIONS: dict[str, tuple[Any, Any]] = {
    f.name: (PIPELINE_ANNOTATIONS[f.name], f.default) for f in fields(PipelineConfig)}
PHOTO_OPTIONS = ("model", "threshold", "detector", "detect_size", "input_mean", "input_scale", "channels")
VIDEO_OPTIONS = (*PHOTO_OPTIONS, "min_face", "threads", "smooth", "confirm", "max_turn", "detect_every", "light_gates")


def option_group(table: dict[str, tuple[Any, Any]], names: tuple[str, ...], into: str,
                 build: Callable[..., Any], **defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A command that takes the options ``names`` of ``table`` (name -> (annotation, default), declared once) and
    receives them as one built object in its parameter ``into``: the declaration, default and check of a shared
    option live in one place, however many commands take it. ``defaults``: this command's own defaults for some."""
    import functools
    import inspect

    def wrap(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != into]
        added = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(n, table[n][1]),
                                   annotation=table[n][0]) for n in names]

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            return command(**{into: build(**{n: kwargs.pop(n) for n in names})}, **kwargs)

        run.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
        del run.__wrapped__  # Typer reads the signature above, not the command's own
        return run

    return wrap


def pipeline_options(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The pipeline settings ``names`` as options, received as one checked ``config: PipelineConfig``: the CLI,
    the API and ``serve`` build the same config."""
    return option_group(PIPELINE_OPTIONS, names, "config", pipeline_config)


UnknownEvents = Annotated[bool, typer.Option(help="events for faces that match nobody (one per face track)")]
Snapshots = Annotated[bool, typer.Option(help="MQTT: each arrival's face as a JPEG on its person's snapshot topic")]
HaDiscovery = Annotated[bool, typer.Option("--ha-discovery", help="MQTT: announce a presence sensor per enrolled "
                                                                  "person to Home Assistant (MQTT discovery)")]
MqttCa = Annotated[Optional[Path], typer.Option(help="mqtts://: the CA certificate that signed the broker's")]
MqttPasswordFile = Annotated[Optional[Path], typer.Option(
    help="file holding the MQTT password (or set EDGEFACE_MQTT_PASSWORD; never in the URL)")]
EVENT_OPTIONS: dict[str, tuple[Any, Any]] = {
    "unknown_events": (UnknownEvents, True),
    "snapshots": (Snapshots, False),
    "ha_discovery": (HaDiscovery, False),
    "mqtt_ca": (MqttCa, None),
    "mqtt_password_file": (MqttPasswordFile, None),
}


def event_settings(unknown_events: bool, snapshots: bool, ha_discovery: bool, mqtt_ca: Path | None,
                   mqtt_password_file: Path | None) -> EventOptions:
    return EventOptions(unknown=unknown_events, snapshots=snapshots, discovery=ha_discovery, mqtt_ca=mqtt_ca,
                        mqtt_password_file=mqtt_password_file)


def event_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The event sinks' settings (recognize, serve) as options, received as one ``event_options: EventOptions``."""
    return option_group(EVENT_OPTIONS, tuple(EVENT_OPTIONS), "event_options", event_settings)(command)


FINETUNE_OPTIONS: dict[str, tuple[Any, Any]] = {"data": (FineData, None), "epochs": (FineEpochs, 2.0),
                                                 "faces": (FineFaces, 4000)}


def finetune_options(**defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The fine-tuning-by-distillation options of the compression commands (--data, --epochs, --faces), received
    as one ``finetune: dict``."""
    return option_group(FINETUNE_OPTIONS, tuple(FINETUNE_OPTIONS), "finetune", dict, **defaults)


KERAS_STEP_OPTIONS: dict[str, tuple[Any, Any]] = {"model": (KerasIn, ...), "out": (KerasOut, ...), **FINETUNE_OPTIONS}


def keras_step_options(**defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A Keras-to-Keras compression step (prune, lowrank, cluster): the model in, the model out and the fine-tuning
    options, received as one ``step: dict``."""
    return option_group(KERAS_STEP_OPTIONS, tuple(KERAS_STEP_OPTIONS), "step", dict, **defaults)


def pipeline_config(**options: Any) -> PipelineConfig:
    """The one way a command turns its options into a pipeline configuration (Enum choices to their values)."""
    return PipelineConfig.of(**{k: getattr(v, "value", v) for k, v in options.items()})
