"""The ``edgeface`` command: parse options, call one library function, print a table or ``--json``.

No logic lives here. Training-half modules are imported inside their commands so the device half of the CLI
never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import csv as csv_module
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeface import __version__
from edgeface.errors import EdgefaceError
from edgeface.manifest import check_threshold
from edgeface.vision.condition_names import CONDITION_HELP, ConditionName
from edgeface.vision.detector_options import (
    DEFAULT_DETECT_SIZE,
    DEFAULT_MIN_FACE,
    DETECT_SIZE_HELP,
    DETECTOR_HELP,
    MIN_FACE_HELP,
    DetectorName,
    check_detect_size,
    check_min_face,
)

app = typer.Typer(help="Make face-recognition models small and fast, prove their accuracy, run them on the edge.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Prepare face datasets: detect, align, write 112x112 crops + a manifest.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data", rich_help_panel="1. data & training")

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
DetectSize = Annotated[int, typer.Option("--detect-size", help=DETECT_SIZE_HELP)]
MinFace = Annotated[int, typer.Option("--min-face", help=MIN_FACE_HELP)]
ModelOpt = Annotated[Optional[str], typer.Option(
    help="embedding model: a .tflite, or a shipped one by name (small); default: the shipped default model")]
ThresholdOpt = Annotated[Optional[float], typer.Option(
    help="cosine threshold; default: the model's FAR 1e-3 threshold from its manifest")]


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgeface {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                               help="show the version and exit")] = False) -> None:
    """edgeface: compress, export, evaluate, benchmark and deploy face-recognition models."""


@data_app.command("prepare")
def data_prepare_command(
    src: Annotated[Path, typer.Argument(help="image root: <person>/<img> folders, a flat folder, or CelebA")],
    dst: Annotated[Path, typer.Argument(help="output root: <identity>/<img>.jpg aligned 112x112 + manifest.jsonl")],
    identities: Annotated[Optional[Path], typer.Option(help="CelebA-style 'filename identity' list")] = None,
    layout: Annotated[Layout, typer.Option(help="how SRC is organised (auto: guess from what is there)")] = Layout.auto,
    exclude_pairs: Annotated[Optional[Path], typer.Option(
        help="skip every person named in this LFW pairs.txt (keeps View 2 out of training)")] = None,
    prefix: Annotated[str, typer.Option(help="prefix for identity names (keeps datasets apart)")] = "",
    workers: Annotated[int, typer.Option(help="worker processes")] = 2,
    limit: Annotated[int, typer.Option(help="stop after this many source images (0: all)")] = 0,
    detector: DetectorOpt = DetectorName.yunet,
    detect_size: DetectSize = DEFAULT_DETECT_SIZE,
    alignment: Annotated[Optional[str], typer.Option(
        help="yunet-dlib150: cut dlib's 150x150 chip from YuNet's points (to fine-tune --arch dlib-resnet) instead "
             "of the 112x112 ArcFace crop")] = None,
    json_out: Json = False,
) -> None:
    """Detect, align and write every face of a dataset; resumable, reports images with no or several faces."""
    check_detect_size(detect_size)
    from edgeface.data.prepare import prepare
    from edgeface.report_format import print_json, print_table

    summary = prepare(src, dst, identities=identities, layout=layout.value, exclude_pairs=exclude_pairs, prefix=prefix,
                      workers=workers, limit=limit, detector=detector.value, detect_size=detect_size,
                      alignment=alignment)
    if json_out:
        print_json(summary)
        return
    print_table(f"prepared {dst}", ["count", "images"], [(k, v) for k, v in summary.items() if k != "dst"])


@data_app.command("views")
def data_views_command(
    src: Annotated[Path, typer.Argument(help="a prepared folder (output of 'edgeface data prepare')")],
    dst: Annotated[Path, typer.Argument(help="new prepared folder for the views (crops, damaged photos, manifest)")],
    per_face: Annotated[int, typer.Option(help="damaged views of each face")] = 1,
    seed: Annotated[int, typer.Option(help="another seed draws other damage")] = 0,
    workers: Annotated[int, typer.Option(help="worker processes")] = 2,
    json_out: Json = False,
) -> None:
    """Damaged views of every prepared face (grey, shading, shadow, blur, small-face detail, JPEG, occlusion,
    colour) for a teacher to label: a prepared folder that distill takes like any other; resumable."""
    from edgeface.data.views import make_views
    from edgeface.report_format import print_json, print_table

    summary = make_views(src, dst, per_face=per_face, seed=seed, workers=workers)
    if json_out:
        print_json(summary)
        return
    drawn = summary.pop("conditions_drawn")
    print_table(f"views in {dst}", ["count", "value"],
                [(k, v) for k, v in summary.items() if k != "dst"] + [(f"drew {k}", v) for k, v in drawn.items()])


DataDirs = Annotated[list[Path], typer.Argument(help="prepared folders (output of 'edgeface data prepare')")]
Arch = Annotated[str, typer.Option(help="architecture from 'edgeface models'")]
Out = Annotated[Path, typer.Option("--out", "-o", help="output folder: checkpoint, log.csv, model.keras + .json")]
Epochs = Annotated[int, typer.Option(help="epochs (a resumed run keeps the schedule it started with)")]
Batch = Annotated[int, typer.Option(help="batch size")]
LR = Annotated[float, typer.Option(help="peak learning rate (AdamW, warm-up then cosine decay)")]
Width = Annotated[Optional[float], typer.Option(help="channel width multiplier (default: the architecture's)")]
Resume = Annotated[bool, typer.Option(help="continue from the checkpoint in --out")]
Strategy = Annotated[StrategyName, typer.Option(help="none, mirrored (all local devices) or multiworker (TF_CONFIG)")]
ValLFW = Annotated[Optional[Path], typer.Option(help="LFW image root: validate on View 2 every --val-every epochs")]
ValPairs = Annotated[Optional[Path], typer.Option(help="pairs.txt for validation")]
ValEvery = Annotated[int, typer.Option(help="epochs between LFW validations")]
Init = Annotated[Optional[Path], typer.Option(help="start from this trained model's weights (same arch and width): "
                                                 "a .keras model or its float32 .tflite export; a "
                                                 "checkpoint.keras also hands on its margin head")]
Margin = Annotated[float, typer.Option(help="angular (arcface) or cosine (cosface) margin")]
Scale = Annotated[float, typer.Option(help="logit scale of the margin heads")]
Seed = Annotated[int, typer.Option(help="seed of initial weights, shuffling and augmentation")]


def train_config(arch: str, out: Path, width: float | None, epochs: int, batch: int, lr: float, resume: bool,
                 strategy: str, val_lfw_dir: Path | None, val_pairs: Path | None, val_every: int,
                 init: Path | None, seed: int):
    from edgeface.train.loop import TrainConfig

    return TrainConfig(arch=arch, out=out, width=width, epochs=epochs, batch=batch, lr=lr, resume=resume,
                       strategy=getattr(strategy, "value", strategy), val_lfw_dir=val_lfw_dir, val_pairs=val_pairs,
                       val_every=val_every, init=init, seed=seed)


def print_training(summary: dict, json_out: bool) -> None:
    from edgeface.report_format import print_json, print_table

    if json_out:
        print_json(summary)
        return
    history = summary["history"]
    rows = [("model", summary["model"]), ("parameters", f"{summary['params']:,}"),
            ("GFLOPs", f"{summary['flops'] / 1e9:.3f}"), ("epochs run", summary["epochs_run"]),
            ("final loss", f"{history['loss'][-1]:.4f}"), ("seconds", summary["train_seconds"])]
    if "lfw_accuracy" in history:
        rows.append(("LFW View 2 (last validation)", f"{100 * history['lfw_accuracy'][-1]:.2f} %"))
    print_table("training", ["", "value"], rows)


@app.command("models", rich_help_panel="1. data & training")
def models_command(json_out: Json = False) -> None:
    """List the registered architectures with their input, parameters and FLOPs at their default size."""
    from edgeface.models import ARCHITECTURES, describe
    from edgeface.report_format import print_json, print_table

    rows = [describe(name) for name in sorted(ARCHITECTURES)]
    if json_out:
        print_json(rows)
        return
    print_table("architectures", ["name", "input", "parameters", "GFLOPs", "embedding", "summary"],
                [(r["name"], "x".join(map(str, r["input"][:2])), f"{r['params']:,}", f"{r['flops'] / 1e9:.3f}",
                  r["embedding"], r["summary"]) for r in rows])


@app.command("train", rich_help_panel="1. data & training")
def train_command(
    data: DataDirs,
    arch: Arch = "mobilefacenet",
    out: Out = Path("runs/train"),
    head: Annotated[Head, typer.Option(help="classification head: plain softmax or a margin head")] = Head.arcface,
    margin: Margin = 0.3,
    scale: Scale = 32.0,
    width: Width = None,
    epochs: Epochs = 20,
    batch: Batch = 128,
    lr: LR = 2e-3,
    resume: Resume = False,
    strategy: Strategy = "none",
    val_lfw_dir: ValLFW = None,
    val_pairs: ValPairs = None,
    val_every: ValEvery = 5,
    init: Init = None,
    seed: Seed = 0,
    json_out: Json = False,
) -> None:
    """Train an embedding network as an identity classifier (softmax / ArcFace / CosFace head)."""
    head = head.value
    from edgeface.train.train import train

    config = train_config(arch, out, width, epochs, batch, lr, resume, strategy, val_lfw_dir, val_pairs, val_every,
                          init, seed)
    print_training(train(data, config, head=head, margin=margin, scale=scale), json_out)


@app.command("distill", rich_help_panel="1. data & training")
def distill_command(
    data: DataDirs,
    teacher: Annotated[str, typer.Option(
        help="'dlib', 'dlib-port' (dlib's network on LiteRT, from face-api's weights), a .tflite or Keras model")],
    arch: Arch = "mobilefacenet",
    out: Out = Path("runs/distill"),
    width: Width = None,
    epochs: Epochs = 20,
    batch: Batch = 128,
    lr: LR = 2e-3,
    resume: Resume = False,
    strategy: Strategy = "none",
    val_lfw_dir: ValLFW = None,
    val_pairs: ValPairs = None,
    val_every: ValEvery = 5,
    workers: Annotated[int, typer.Option(help="processes computing teacher embeddings (cached)")] = 2,
    init: Init = None,
    identity_weight: Annotated[float, typer.Option(
        help="weight of an ArcFace loss on the labelled faces beside distillation (0: distillation only)")] = 0.0,
    relation_weight: Annotated[float, typer.Option(
        help="weight of the relation loss: match the teacher's similarity matrix of each batch (0: off)")] = 0.0,
    seed: Seed = 0,
    margin: Margin = 0.3,
    scale: Scale = 32.0,
    teacher_flip: Annotated[bool, typer.Option(
        help="the teacher embeds each face and its mirror and averages them (a better target)")] = False,
    centre: Annotated[bool, typer.Option(
        " /--raw-targets", help="--raw-targets: match the teacher's embeddings as they are instead of centred on "
                                "their mean (for a student that starts as the teacher: --arch dlib-resnet)")] = True,
    json_out: Json = False,
) -> None:
    """Train a student to reproduce a teacher's embeddings (cosine loss); works on unlabelled folders."""
    from edgeface.train.distill import distill

    config = train_config(arch, out, width, epochs, batch, lr, resume, strategy, val_lfw_dir, val_pairs, val_every,
                          init, seed)
    print_training(distill(data, teacher, config, workers=workers, identity_weight=identity_weight, margin=margin,
                           scale=scale, relation_weight=relation_weight, teacher_flip=teacher_flip, centre=centre),
                   json_out)


KerasIn = Annotated[Path, typer.Argument(help="a tf_keras model (.keras/.h5); ours or yours")]
KerasOut = Annotated[Path, typer.Option("--out", "-o", help="compressed Keras model (.keras) + manifest")]
FineData = Annotated[Optional[list[Path]], typer.Option("--data", help="prepared face folders to fine-tune on")]
FineEpochs = Annotated[float, typer.Option(help="fine-tuning epochs over the face set (distillation)")]
FineFaces = Annotated[int, typer.Option(help="faces drawn from --data for fine-tuning")]


def print_compression(result: dict, json_out: bool) -> None:
    from edgeface.report_format import print_json, print_table

    if json_out:
        print_json(result)
        return
    print_table(f"{result['step']['step']} -> {result['model']}", ["", "before", "after"], [
        ("parameters", result["params_before"], result["params_after"]),
        ("GFLOPs", (result["flops_before"] or 0) / 1e9, result["flops_after"] / 1e9)])
    for row in result.get("report", []):
        print(", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
              file=sys.stderr)


@app.command("prune", rich_help_panel="2. compress & export")
def prune_command(
    model: KerasIn,
    out: KerasOut,
    sparsity: Annotated[float, typer.Option(help="magnitude pruning: fraction of Conv2D/Dense weights set to 0")] = 0.5,
    structured: Annotated[bool, typer.Option(help="remove whole channels instead (cuts FLOPs and latency)")] = False,
    ratio: Annotated[float, typer.Option(help="--structured: fraction of channels removed per group")] = 0.5,
    flops: Annotated[Optional[float], typer.Option(help="--structured, instead of --ratio: remove this fraction "
                                                        "of FLOPs, each group's share chosen by how much it changes "
                                                        "the embedding (needs --data)")] = None,
    steps: Annotated[int, typer.Option(help="--structured: reach --ratio in this many prune + fine-tune steps")] = 1,
    relation_weight: Annotated[float, typer.Option(help="--structured: weight of the batch relation loss beside "
                                                        "the cosine to the original")] = 0.0,
    data: FineData = None,
    epochs: FineEpochs = 2.0,
    faces: FineFaces = 4000,
    json_out: Json = False,
) -> None:
    """Magnitude pruning (TFMOT) or structured channel pruning, fine-tuned by distillation from the original."""
    from edgeface.compress.io import face_set, load_model, require_faces, save_compressed
    from edgeface.compress.prune import magnitude_prune, structured_prune

    keras_model, manifest = load_model(model)
    face_data = face_set(keras_model, manifest, data, faces)
    if structured:
        pruned, report = structured_prune(keras_model, ratio, face_data, epochs, steps=steps,
                                          relation_weight=relation_weight, flops=flops)
        share = {"flops": flops} if flops is not None else {"ratio": ratio}
        step = {"step": "prune", "structured": True, **share, "steps": steps,
                "relation_weight": relation_weight, "epochs": epochs if face_data else 0}
    else:
        pruned, report = magnitude_prune(keras_model, sparsity, require_faces(face_data, "prune"), epochs)
        step = {"step": "prune", "structured": False, "sparsity": sparsity, "epochs": epochs}
    print_compression({**save_compressed(pruned, out, manifest, step), "report": report}, json_out)


@app.command("lowrank", rich_help_panel="2. compress & export")
def lowrank_command(
    model: KerasIn,
    out: KerasOut,
    rank: Annotated[Optional[int], typer.Option(help="rank of every factorised layer")] = None,
    energy: Annotated[Optional[float], typer.Option(help="keep this fraction of each kernel's spectral energy")] = None,
    data: FineData = None,
    epochs: FineEpochs = 1.0,
    faces: FineFaces = 4000,
    json_out: Json = False,
) -> None:
    """SVD-factorise Dense and Conv2D kernels into two thinner layers (a k x k conv with R filters, then a 1x1)
    where that saves parameters."""
    from edgeface.compress.io import face_set, load_model, save_compressed
    from edgeface.compress.lowrank import lowrank

    keras_model, manifest = load_model(model)
    factored, report = lowrank(keras_model, face_set(keras_model, manifest, data, faces), rank, energy, epochs)
    step = {"step": "lowrank", "rank": rank, "energy": energy, "epochs": epochs if data else 0}
    print_compression({**save_compressed(factored, out, manifest, step), "report": report}, json_out)


@app.command("cluster", rich_help_panel="2. compress & export")
def cluster_command(
    model: KerasIn,
    out: KerasOut,
    clusters: Annotated[int, typer.Option(help="distinct weight values per kernel")] = 16,
    preserve_sparsity: Annotated[bool, typer.Option(help="keep the zeros of an earlier pruning")] = False,
    data: FineData = None,
    epochs: FineEpochs = 1.0,
    faces: FineFaces = 4000,
    json_out: Json = False,
) -> None:
    """Weight clustering (TFMOT), fine-tuned by distillation."""
    from edgeface.compress.cluster import cluster
    from edgeface.compress.io import face_set, load_model, require_faces, save_compressed

    keras_model, manifest = load_model(model)
    faces_set = require_faces(face_set(keras_model, manifest, data, faces), "cluster")
    clustered = cluster(keras_model, clusters, faces_set, preserve_sparsity, epochs)
    step = {"step": "cluster", "clusters": clusters, "preserve_sparsity": preserve_sparsity, "epochs": epochs}
    print_compression(save_compressed(clustered, out, manifest, step), json_out)


@app.command("quantize", rich_help_panel="2. compress & export")
def quantize_command(
    model: Annotated[Path, typer.Argument(help="a tf_keras model (.keras/.h5), or a float .tflite (yours or "
                                          "imported with edgeface import)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output .tflite (+ manifest)")],
    precision: Annotated[str, typer.Option(
        "--precision", "--mode", "--recipe",
        help="Keras models: dynamic, float16, int8 (post-training), qat, qat-prune-preserve (quantization-aware); "
             ".tflite models, the LiteRT quantizer's recipes: int8, int16x8 (int16 activations), dynamic, "
             "weight-only")] = "int8",
    calib_data: Annotated[Optional[list[Path]], typer.Option(
        help="calibration faces: prepared folders, or (for .tflite) folders of photos")] = None,
    calib: Annotated[int, typer.Option(help="number of calibration faces")] = 300,
    io: Annotated[IOType, typer.Option(help="int8 models: int8 or float inputs/outputs")] = IOType.int8,
    max_drop: Annotated[Optional[float], typer.Option(
        help=".tflite: keep the most damaged layers in float until LFW View 2 accuracy is within this many "
             "percentage points of the float model (needs --lfw-dir, --pairs)")] = None,
    lfw_dir: Annotated[Optional[Path], typer.Option(help="with --max-drop: LFW image root")] = None,
    pairs: Annotated[Optional[Path], typer.Option(help="with --max-drop: the View 2 pairs.txt")] = None,
    rewrite: Annotated[bool, typer.Option(help=".tflite: rewrite PReLU and stride-1 PADs into ops XNNPACK runs "
                                          "fast in int8 (exact in float)")] = True,
    layers: Annotated[bool, typer.Option("--layers", help=".tflite: print the per-layer error report")] = False,
    input_mean: InputMean = None,
    input_scale: InputScale = None,
    channels: Channels = None,
    data: FineData = None,
    epochs: FineEpochs = 2.0,
    faces: FineFaces = 4000,
    json_out: Json = False,
) -> None:
    """Quantize a Keras model (post-training or quantization-aware) or a float .tflite (LiteRT quantizer, optionally
    within an LFW accuracy budget), straight to a .tflite with manifest."""
    from edgeface.report_format import print_json, print_table

    kind, kinds = (".tflite", [r.value for r in Recipe]) if model.suffix == ".tflite" else \
        ("Keras", [m.value for m in QuantMode])
    if precision not in kinds:
        raise EdgefaceError(f"--precision {precision!r} is not one for a {kind} model: choose one of "
                            f"{', '.join(kinds)}")
    if model.suffix == ".tflite":
        from edgeface.compress.tflite_quantize import quantize_file

        log = quantize_file(model, out, precision, (input_mean, input_scale, channels), calib_data or [], calib,
                            rewrite, max_drop, lfw_dir, pairs, report_layers=layers)
        if json_out:
            print_json(log)
            return
        print_quantize_log(log)
        return
    mode, io = precision, io.value
    from edgeface.compress.io import face_set, load_model, require_faces
    from edgeface.compress.quantize import QAT_MODES, quantization_aware
    from edgeface.export import calibration_faces, export

    keras_model, manifest = load_model(model)
    step: dict = {"step": "quantize", "mode": mode}
    if mode in QAT_MODES:
        faces_set = require_faces(face_set(keras_model, manifest, data, faces), mode)
        keras_model = quantization_aware(keras_model, faces_set, mode, epochs)
        step["epochs"] = epochs
    calibration = calibration_faces(calib_data or data or [], calib) if (calib_data or data) else None
    if calibration is None and mode in QAT_MODES:
        calibration = faces_set.faces[:calib]
    path, result = export(keras_model, out, "int8" if mode in QAT_MODES else mode, calibration, io, manifest, step)
    info = {"model": str(path), "size_bytes": result.size_bytes, "mode": mode, "quantization": result.quantization}
    if json_out:
        print_json(info)
        return
    print_table(f"quantized -> {path}", ["", "value"], [("mode", mode), ("size bytes", result.size_bytes)])


def print_quantize_log(log: dict) -> None:
    from edgeface.report_format import print_table

    rows = [("recipe", log["recipe"]), ("calibration faces", log["calibration_faces"]),
            ("rewrites", ", ".join(f"{k} x{v}" for k, v in log["rewrites"].items() if v) or "none"),
            ("size", f"{log['size_bytes']:,} bytes ({log['size_bytes'] / log['float_size_bytes']:.2f} of float)")]
    rows += [(f"not on XNNPACK, {stage}", ", ".join(f"{k} x{n}" for k, n in off.items()) or "none")
             for stage, off in log["not_on_xnnpack"].items()]
    if log.get("left_in_float"):
        rows.append(("left in float", ", ".join(f"{k} x{n}" for k, n in log["left_in_float"].items())))
    if "steps" in log:
        rows.append(("LFW float", f"{100 * log['float_accuracy']:.2f} %"))
        rows += [(f"LFW, {len(s['kept_float'])} layer(s) kept float", f"{100 * s['accuracy']:.2f} % "
                  f"(-{s['drop_pp']:.2f} pp)") for s in log["steps"]]
        rows.append(("within --max-drop", "yes" if log["within_budget"] else "NO: every layer tried"))
        if log["steps"][-1]["kept_float"]:
            rows.append(("kept in float", ", ".join(log["steps"][-1]["kept_float"])[:300]))
    print_table(f"quantized -> {log['out']}", ["", "value"], rows)
    if log.get("layer_errors"):
        print_table("layers the quantization hurt most (on calibration faces)",
                    ["#", "op", "SNR dB", "cosine", "dB lost here", "output"],
                    [(r["index"], r["op"], round(r["snr_db"], 1), round(r["cosine"], 4), round(r["introduced_db"], 2),
                      r["name"][:40]) for r in log["layer_errors"][:10]])


@app.command("import", rich_help_panel="2. compress & export")
def import_command(
    source: Annotated[Path, typer.Argument(help="your face embedder: .onnx, SavedModel folder, .h5/.keras, or a "
                                           "float .tflite")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output float .tflite (manifest inside)")],
    input_mean: InputMean = None,
    input_scale: InputScale = None,
    channels: Channels = None,
    size: Annotated[Optional[int], typer.Option(help="face size for a model that takes any size")] = None,
    alignment: Annotated[AlignmentName, typer.Option(
        help="the landmarks faces are aligned from (yunet-5pt: the ArcFace 5-point template most models use)")] = (
        AlignmentName.yunet_5pt),
    check_faces: Annotated[Optional[Path], typer.Option(
        help="photos, one folder per person (2+ people, 2+ photos each): the normalisation is checked on them, "
             "and picked from the usual conventions when not given")] = None,
    json_out: Json = False,
) -> None:
    """Bring your own face model: convert it to a float .tflite with a manifest, its normalisation checked."""
    from edgeface.manifest import InputSpec
    from edgeface.model_import import import_model
    from edgeface.report_format import print_json, print_table

    given = (input_mean, input_scale, channels)
    if any(v is None for v in given) and check_faces is None:
        raise EdgefaceError("give the input normalisation (--input-mean, --input-scale, --channels), or "
                            "--check-faces PHOTOS to find it")
    spec = InputSpec(mean=0.0 if input_mean is None else input_mean, scale=1.0 if input_scale is None else input_scale,
                     channels=channels or "RGB")
    path, manifest, report = import_model(source, out, spec, alignment.value, size, check_faces,
                                          pick=any(v is None for v in given))
    info = {"model": str(path), "format": report["format"], "input": manifest.input.__dict__,
            "embedding_size": manifest.embedding_size, "flops": manifest.flops, "size_bytes": manifest.size_bytes,
            "normalisation_check": report}
    if json_out:
        print_json(info)
        return
    check = report.get("given")
    print_table(f"imported {source.name} -> {path}", ["", "value"], [
        ("format", report["format"]), ("input", f"{manifest.input.size}x{manifest.input.size} "
                                                f"{manifest.input.channels}, (pixel - {manifest.input.mean:g}) * "
                                                f"{manifest.input.scale:.7g}"),
        ("embedding", manifest.embedding_size), ("MFLOPs", round(manifest.flops / 1e6, 1)),
        ("normalisation", f"checked on {report['faces']} faces: same person {check['same']:.2f}, different "
                          f"{check['different']:.2f}, AUC {check['auc']:.3f}" if check else
                          "NOT checked (pass --check-faces PHOTOS)")])


@app.command("export", rich_help_panel="2. compress & export")
def export_command(
    model: Annotated[Path, typer.Argument(help="a tf_keras model (.keras, .h5 or SavedModel folder)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output .tflite (a .json manifest is written beside)")],
    format: Annotated[ExportFormat, typer.Option("--format", help="export format")] = ExportFormat.tflite,
    quantize: Annotated[Precision, typer.Option("--precision", "--quantize",
                                                help="weights/activations precision")] = Precision.float32,
    calib_data: Annotated[Optional[list[Path]], typer.Option(help="prepared folders for int8 calibration")] = None,
    calib: Annotated[int, typer.Option(help="number of calibration faces")] = 300,
    io: Annotated[IOType, typer.Option(help="int8 models: int8 or float inputs/outputs")] = IOType.int8,
    flip: Annotated[bool, typer.Option(help="the file embeds each face and its mirror image and sums the two: "
                                            "more accurate, twice the compute")] = False,
    json_out: Json = False,
) -> None:
    """Export a Keras model to TFLite with its manifest inside (normalisation, quantization, sha256, chain),
    atomically."""
    format, quantize, io = format.value, quantize.value, io.value
    from edgeface.export import calibration_faces, export
    from edgeface.report_format import print_json, print_table

    if format != "tflite":
        raise EdgefaceError(f"unsupported --format {format!r}: only tflite")
    faces = calibration_faces(calib_data, calib) if quantize == "int8" and calib_data else None
    path, manifest = export(model, out, quantize, faces, io, flip=flip)
    info = {"model": str(path), "size_bytes": manifest.size_bytes, "sha256": manifest.sha256,
            "quantize": quantize, "flip": flip, "params": manifest.params, "flops": manifest.flops,
            "quantization": manifest.quantization}
    if json_out:
        print_json(info)
        return
    print_table(f"exported {path}", ["", "value"], [(k, v) for k, v in info.items() if k != "quantization"])


@app.command("eval", rich_help_panel="3. evaluate & benchmark")
def eval_command(
    lfw_dir: Annotated[Path, typer.Option(help="LFW image root (<Name>/<Name>_NNNN.jpg)")],
    pairs: Annotated[Path, typer.Option(help="the official View 2 pairs.txt")],
    model: ModelArg = None,
    flip: Annotated[bool, typer.Option(help="average the embeddings of each face and its mirror image")] = False,
    threads: Annotated[int, typer.Option("--workers", "--threads", help="processes embedding the images in "
                                                                      "parallel")] = 2,
    input_mean: InputMean = None,
    input_scale: InputScale = None,
    channels: Channels = None,
    plot: Annotated[Optional[Path], typer.Option(help="write the ROC curve to this PNG")] = None,
    save_threshold: Annotated[bool, typer.Option(
        help="store the FAR 1e-3 threshold and the result in the model's manifest")] = False,
    detector: DetectorOpt = DetectorName.yunet,
    detect_size: DetectSize = DEFAULT_DETECT_SIZE,
    condition: Annotated[ConditionName, typer.Option(help=CONDITION_HELP)] = ConditionName.plain,
    hold_conditions: Annotated[bool, typer.Option(
        help="with --save-threshold: raise the threshold until FAR is also <= 3e-3 under every condition")] = False,
    json_out: Json = False,
) -> None:
    """Score a model on LFW View 2: 10-fold accuracy +- SE, ROC AUC, TAR at FAR 1e-3 and 1e-2 (and the FAR at the
    model's own threshold), on the photos as they are or under a camera condition."""
    check_detect_size(detect_size)
    if hold_conditions and not save_threshold:
        raise EdgefaceError("--hold-conditions places the threshold --save-threshold stores: add --save-threshold")
    if save_threshold and condition != ConditionName.plain:
        raise EdgefaceError("--save-threshold is measured on plain LFW: drop --condition (benchmarks/robustness.py "
                            "checks a threshold under every condition)")
    from edgeface.evaluate.lfw import evaluate_lfw
    from edgeface.report_format import pct, print_json, print_table
    from edgeface.vision.embed import load_embedder

    if save_threshold and flip:
        raise EdgefaceError("--save-threshold stores the threshold that recognize uses, which embeds without --flip: "
                            "drop --flip, or export with --flip so the file itself averages face and mirror")
    if save_threshold:
        from edgeface.evaluate.lfw import check_can_save_threshold

        check_can_save_threshold(model, pairs)
    embedder = load_embedder(model, threads=threads, flip=flip, mean=input_mean, scale=input_scale,
                             channels=channels)
    report = evaluate_lfw(embedder, lfw_dir, pairs, workers=threads, plot=plot, detector=detector.value,
                          detect_size=detect_size, condition=condition.value)
    if save_threshold:
        from edgeface.evaluate.lfw import save_threshold as store

        store(model, embedder, report, lfw_dir, pairs, hold_conditions, workers=threads, detector=detector.value,
              detect_size=detect_size)
        print(f"saved threshold {report['saved_threshold']:.4f} ({report['threshold_source']}, {report['detector']} "
              f"detection) into {model} and {report['manifest']}", file=sys.stderr)
    if json_out:
        print_json(report)
        return
    tar = report["tar_at_far"]
    at_threshold = [("FAR / TAR at the model's threshold", f"{report['far_at_model_threshold']:.4f} / "
                     f"{pct(report['tar_at_model_threshold'])} (threshold {report['model_threshold']:.4f})")] \
        if "model_threshold" in report else []
    print_table(f"LFW View 2 ({report['condition']}): {report['model']}", ["metric", "value"], [
        ("accuracy (10-fold)", f"{pct(report['accuracy'])} +- {100 * report['accuracy_se']:.2f}"),
        ("ROC AUC", f"{report['roc_auc']:.5f}"),
        ("TAR @ FAR 1e-3", pct(tar["0.001"])),
        ("TAR @ FAR 1e-2", pct(tar["0.01"])),
        ("best global threshold (cosine)", f"{report['threshold']:.4f}"),
        ("threshold @ FAR 1e-3", f"{report['threshold_at_far']['0.001']:.4f}"),
        *at_threshold,
        ("pairs / images", f"{report['n_pairs']} / {report['n_images']}"),
        ("detector", f"{report['detector']} ({report['detect_size']} px)"),
        ("detection failed (centre crop)", str(report["n_detect_failed"])),
        ("seconds", f"{report['seconds']:.1f}"),
    ])


@app.command("bench", rich_help_panel="3. evaluate & benchmark")
def bench_command(
    models: Annotated[Optional[list[str]], typer.Argument(help=".tflite files; default: the shipped model")] = None,
    threads: Annotated[str, typer.Option("--threads", "-t", help="comma-separated thread counts, e.g. 1,2,4")] = "1",
    runs: Annotated[int, typer.Option(help="timed inferences per model")] = 200,
    warmup: Annotated[int, typer.Option(help="untimed inferences before timing")] = 20,
    xnnpack: Annotated[bool, typer.Option(help="use the XNNPACK delegate (--no-xnnpack: reference kernels)")] = True,
    ops: Annotated[bool, typer.Option("--ops", help="per-op profile of the first model: slowest ops, their "
                                      "precision, share of the time, and any op XNNPACK does not run")] = False,
    top: Annotated[int, typer.Option(help="with --ops: how many of the slowest ops to list")] = 15,
    pipeline: Annotated[Optional[str], typer.Option(
        help="time the whole per-frame path (decode, detect, align, embed, match) on a video, image or folder")] = None,
    detector: DetectorOpt = DetectorName.yunet,
    detect_size: DetectSize = DEFAULT_DETECT_SIZE,
    input_mean: InputMean = None,
    input_scale: InputScale = None,
    channels: Channels = None,
    json_out: Json = False,
) -> None:
    """Latency (p50/p90/p99), init time, memory, size and roofline efficiency on the light runtime."""
    check_detect_size(detect_size)
    from edgeface.report_format import print_json, print_table
    from edgeface.runtime.bench import bench

    try:
        thread_list = [int(t) for t in threads.split(",") if t.strip()]
    except ValueError:
        raise EdgefaceError(f"--threads must be comma-separated integers, got {threads!r}") from None
    if not thread_list:
        raise EdgefaceError("--threads needs at least one thread count, e.g. 1 or 1,2,4")
    if runs < 1 or warmup < 0:
        raise EdgefaceError("--runs must be at least 1 and --warmup 0 or more")
    from edgeface.default_model import resolve_model

    models = [str(resolve_model(m)) for m in models or [None]]
    if ops:
        print_ops_profile(models[0], thread_list[0], xnnpack, top, json_out)
        return
    if pipeline:
        from edgeface.recognize.profile import profile_pipeline

        report = profile_pipeline(pipeline, models[0], threads=thread_list[0], detector=detector.value,
                                  detect_size=detect_size, normalisation=(input_mean, input_scale, channels))
        if json_out:
            print_json(report)
            return
        print_table(f"per-frame pipeline on {pipeline} ({report['frames']} frames, {report['faces']} faces, "
                    f"{report['detector']})",
                    ["stage", "mean ms", "p50 ms", "p90 ms", "share"],
                    [(k, v["mean_ms"], v["p50_ms"], v["p90_ms"], f"{100 * v['share']:.0f} %")
                     for k, v in report["stages"].items()])
        return
    rows = bench(models, thread_list, runs=runs, warmup=warmup, xnnpack=xnnpack)
    if json_out:
        print_json(rows)
        return
    print_table("edgeface bench (ratio: to the first model at the same thread count, round by round)",
                ["model", "threads", "init ms", "p50 ms", "p90 ms", "p99 ms", "ratio", "RSS MB", "size KB",
                 "GFLOP/s", "of peak", "peak of"],
                [(Path(r["model"]).name, r["threads"], round(r["init_ms"], 1), round(r["p50_ms"], 3),
                  round(r["p90_ms"], 3), round(r["p99_ms"], 3), f"{r['ratio_to_first']:.2f}x",
                  round(r["peak_rss_mb"], 1), round(r["size_bytes"] / 1024), round(r["achieved_gflops"], 1),
                  f"{100 * r['efficiency']:.0f} %" if "efficiency" in r else "-", r.get("peak_of", "-"))
                 for r in rows])


def print_ops_profile(model: str, threads: int, xnnpack: bool, top: int, json_out: bool) -> None:
    from edgeface.report_format import print_json, print_table
    from edgeface.runtime.ops_profile import profile_ops

    if top < 1:
        raise EdgefaceError(f"--top must be at least 1, got {top}")
    report = profile_ops(model, threads=threads, xnnpack=xnnpack)
    if json_out:
        print_json(report)
        return
    print_table(f"slowest ops of {Path(model).name} ({threads} thread(s); whole model p50 "
                f"{report['whole_model_p50_ms']:.3f} ms, ops timed alone sum to {report['sum_of_ops_ms']:.3f} ms)",
                ["#", "op", "precision", "output", "ms", "share", "GFLOP/s", "XNNPACK", "name"],
                [(r["index"], r["op"], r["precision"], "x".join(map(str, r["output_shape"])), round(r["ms"], 4),
                  f"{100 * r['share']:.1f} %", round(r["flops"] / (r["ms"] * 1e6), 1) if r["flops"] else "-",
                  "yes" if r["xnnpack"] else "NO", r["name"][:40]) for r in report["ops"][:top]])
    print_table("time by op type", ["op", "count", "ms", "share"],
                [(k, v["count"], round(v["ms"], 3), f"{100 * v['ms'] / report['sum_of_ops_ms']:.1f} %")
                 for k, v in sorted(report["by_kind"].items(), key=lambda kv: -kv[1]["ms"])])
    if report["not_on_xnnpack"]:
        print("not run by XNNPACK (reference kernels): "
              + ", ".join(f"{k} x{n}" for k, n in report["not_on_xnnpack"].items()))


LFWDir = Annotated[Path, typer.Option(help="LFW image root")]
PairsFile = Annotated[Path, typer.Option(help="LFW View 2 pairs.txt")]


@app.command("compare", rich_help_panel="3. evaluate & benchmark")
def compare_command(
    model: KerasIn,
    data: Annotated[list[Path], typer.Option("--data", help="prepared faces: fine-tuning and int8 calibration")],
    lfw_dir: LFWDir,
    pairs: PairsFile,
    techniques: Annotated[str, typer.Option(help="comma-separated: quantize,prune,structured,lowrank,qat,cluster,"
                                                 "distill")] = "quantize,prune,structured,lowrank,qat,cluster",
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for variants, report.md/json, pareto.png")] = Path(
        "runs/compare"),
    epochs: FineEpochs = 2.0,
    faces: FineFaces = 4000,
    student: Annotated[Optional[str], typer.Option(help="distill: ARCH[:WIDTH], e.g. mobilefacenet:0.5")] = None,
    json_out: Json = False,
) -> None:
    """Build, export, score (LFW, from the .tflite) and time every technique; report + Pareto plot. Resumable."""
    from edgeface.report import compare
    from edgeface.report_format import print_json, print_table

    result = compare(model, [t.strip() for t in techniques.split(",") if t.strip()], data, out, lfw_dir, pairs,
                     epochs, faces, student)
    if json_out:
        print_json(result)
        return
    print_table(f"edgeface compare {model.name} (outputs in {out})",
                ["variant", "KB", "gzip KB", "p50 ms", "speed-up", "LFW %", "delta pp", "TAR@1e-3 %"],
                [(r["variant"], round(r["size_bytes"] / 1024), round(r["gzip_bytes"] / 1024), round(r["p50_ms"], 3),
                  f"{r['speedup_vs_float32']:.2f}x", f"{100 * r['accuracy']:.2f} +- {100 * r['accuracy_se']:.2f}",
                  f"{r['delta_pp']:+.2f}", f"{100 * r['tar_at_far_1e-3']:.2f}") for r in result["results"]])


@app.command("optimize", rich_help_panel="3. evaluate & benchmark")
def optimize_command(
    model: KerasIn,
    data: Annotated[list[Path], typer.Option("--data", help="prepared faces: fine-tuning and int8 calibration")],
    lfw_dir: LFWDir,
    pairs: PairsFile,
    out: Annotated[Path, typer.Option("--out", "-o", help="the chosen .tflite (+ manifest)")] = Path(
        "optimized.tflite"),
    max_drop: Annotated[float, typer.Option(help="largest LFW accuracy loss allowed, percentage points")] = 0.3,
    target: Annotated[Target, typer.Option(help="what to minimise within the accuracy budget")] = Target.latency,
    epochs: FineEpochs = 2.0,
    faces: FineFaces = 4000,
    work: Annotated[Optional[Path], typer.Option(help="variants folder (a compare --out folder is reused)")] = None,
    json_out: Json = False,
) -> None:
    """The fastest (or smallest) exported variant whose LFW accuracy stays within --max-drop of float32."""
    target = target.value
    from edgeface.report import optimize
    from edgeface.report_format import print_json, print_table

    result = optimize(model, max_drop, target, data, out, lfw_dir, pairs, epochs, faces, work)
    if json_out:
        print_json(result)
        return
    print_table(f"optimize ({target}, max drop {max_drop} pp): chose {result['chosen']} -> {out}",
                ["variant", "p50 ms", "KB", "LFW %", "delta pp", "within budget"],
                [(r["variant"], round(r["p50_ms"], 3), round(r["size_bytes"] / 1024),
                  f"{100 * r['accuracy']:.2f}", f"{r['delta_pp']:+.2f}", "yes" if -r["delta_pp"] <= max_drop else "no")
                 for r in result["evidence"]])


@app.command("info", rich_help_panel="3. evaluate & benchmark")
def info_command(model: ModelArg = None,
                 bytes_: Annotated[bool, typer.Option("--bytes", help="where the file's bytes go: weights, biases, "
                                                      "quantization parameters, names, metadata")] = False,
                 json_out: Json = False) -> None:
    """Show a .tflite model's tensors, runtime backend and manifest."""
    from edgeface.report_format import print_json, print_table
    from edgeface.runtime.info import model_info

    info = model_info(model)
    if bytes_:
        from edgeface.runtime.file_bytes import byte_breakdown

        info["bytes"] = byte_breakdown(Path(info["file"]).read_bytes())
    if json_out:
        print_json(info)
        return
    rows = [(k, v) for k, v in info.items() if not isinstance(v, (dict, list))]
    rows += [(f"{t['role']} {t['name']}", f"{t['shape']} {t['dtype']} q={t['scale']:.4g},{t['zero_point']}")
             for t in info["tensors"]]
    rows += manifest_rows(info["manifest"])
    print_table(f"model {info['file']}", ["field", "value"], rows)
    if bytes_:
        total = info["bytes"]["total"]
        print_table("where the bytes go", ["part", "bytes", "share"],
                    [(k, f"{v:,}", f"{100 * v / total:.1f} %") for k, v in info["bytes"].items() if k != "total"])


def manifest_rows(manifest: dict | None) -> list[tuple[str, str]]:
    """What a user checks before trusting a file: how to feed it, what it was trained on, its threshold and LFW."""
    if not manifest:
        return [("manifest", "none: pass --input-mean/--input-scale/--channels to use this model")]
    spec, lfw = manifest.get("input", {}), manifest.get("metrics", {}).get("lfw")
    rows = [("architecture", manifest.get("architecture") or "?"),
            ("input", f"{spec.get('size')}x{spec.get('size')} {spec.get('channels')}, (pixel - {spec.get('mean')}) x "
                      f"{spec.get('scale')}"),
            ("alignment", manifest.get("alignment") or "?"), ("embedding", f"{manifest.get('embedding_size')}-d"),
            ("precision", manifest.get("dtype") or "?"),
            ("threshold", f"{manifest['threshold']:.4f} (FAR {manifest.get('threshold_far')}; "
                          f"{manifest.get('threshold_source', 'source not recorded')})" if manifest.get("threshold")
             else "none stored: run edgeface eval MODEL --save-threshold"),
            ("parameters, FLOPs", f"{manifest.get('params', 0):,}, {manifest.get('flops', 0) / 1e9:.3f} G")]
    if lfw:
        rows.append(("LFW View 2", f"{100 * lfw['accuracy']:.2f} % +- {100 * lfw['accuracy_se']:.2f}, AUC "
                                   f"{lfw['roc_auc']:.4f}, TAR at FAR 1e-3 {100 * lfw['tar_at_far']['0.001']:.1f} %"))
    rows.append(("made by", " -> ".join(step.get("step", "?") for step in manifest.get("chain", [])) or "?"))
    return rows


@app.command("detect", rich_help_panel="4. recognise on the device")
def detect_command(
    target: Annotated[Path, typer.Argument(help="an image or a folder of images")],
    detector: DetectorOpt = DetectorName.yunet,
    detect_size: DetectSize = DEFAULT_DETECT_SIZE,
    csv: Annotated[bool, typer.Option("--csv", help="CSV in face_recognition's order: file,top,right,bottom,left")]
    = False,
    json_out: Json = False,
) -> None:
    """Find faces: box, landmarks and score of every face in an image or a folder (no model needed)."""
    from edgeface.api import public
    from edgeface.report_format import print_json, print_table
    from edgeface.vision.detect import FaceFinder
    from edgeface.vision.image import image_files, read_image

    check_detect_size(detect_size)
    files, skipped = image_files(target)
    finder = FaceFinder(detector.value, detect_size=detect_size)
    rows, errors = [], 0
    for path in files:
        try:
            faces = [public(f) for f in finder.find(read_image(path))]
        except EdgefaceError as exc:
            errors += 1
            skipped[str(path)] = str(exc)
            continue
        rows += [{"file": str(path), **f.to_dict()} | {"top_right_bottom_left": list(f.top_right_bottom_left)}
                 for f in faces]
    for path, why in skipped.items():
        print(f"edgeface: skipped {path!r}: {why}", file=sys.stderr)
    if errors == len(files):
        raise EdgefaceError(f"no image of {target} could be read")
    if csv:  # the csv module quotes commas, quotes and newlines in file names
        writer = csv_module.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["file", "top", "right", "bottom", "left"])
        writer.writerows([r["file"], *r["top_right_bottom_left"]] for r in rows)
        return
    if json_out:
        print_json({"detector": detector.value, "images": len(files), "unreadable": errors, "skipped": skipped,
                    "faces": rows})
        return
    print_table(f"faces in {target} ({detector.value})", ["file", "box x0,y0,x1,y1", "score"],
                [(Path(r["file"]).name, ", ".join(f"{v:.0f}" for v in r["box"]), f"{r['score']:.3f}") for r in rows])


@app.command("verify", rich_help_panel="4. recognise on the device")
def verify_command(
    a: Annotated[Path, typer.Argument(help="photo of one person")],
    b: Annotated[Path, typer.Argument(help="photo of the same person, or not")],
    model: ModelOpt = None,
    threshold: ThresholdOpt = None,
    detector: DetectorOpt = DetectorName.yunet,
    detect_size: DetectSize = DEFAULT_DETECT_SIZE,
    input_mean: InputMean = None,
    input_scale: InputScale = None,
    channels: Channels = None,
    all_faces: Annotated[bool, typer.Option(help="compare every face of A with every face of B; the best pair "
                                                 "decides")] = False,
    json_out: Json = False,
) -> None:
    """1:1: are the main faces of two photos the same person? Exit 0 same, 1 different, 2 error."""
    from edgeface.api import load
    from edgeface.report_format import print_json, print_table

    check_detect_size(detect_size)
    if threshold is not None:
        check_threshold(threshold)
    recognizer = load(model, detector=detector.value, detect_size=detect_size, threshold=threshold,
                      input_mean=input_mean, input_scale=input_scale, channels=channels)
    result = {"a": str(a), "b": str(b), **recognizer.verify(a, b, all_faces=all_faces),
              "model": recognizer.embedder.name}
    if json_out:
        print_json(result)
    else:
        print_table("edgeface verify", ["", "value"], [
            ("same person", "yes" if result["same"] else "no"), ("score (cosine)", f"{result['score']:.4f}"),
            ("threshold", f"{result['threshold']:.4f}"), ("model", result["model"]),
            *((f"face compared in {name}", ", ".join(f"{v:.0f}" for v in box))
              for name, box in zip((a.name, b.name), result["boxes"], strict=True))])
        crowded = [f"{path.name} has {n} faces" for path, n in zip((a, b), result["faces"], strict=True) if n > 1]
        if crowded and not all_faces:
            print(f"note: {' and '.join(crowded)}; the largest, most central was compared (--all-faces compares "
                  "every pair)", file=sys.stderr)
    raise typer.Exit(0 if result["same"] else 1)


GalleryOpt = Annotated[Optional[Path], typer.Option("--gallery", help="gallery file (default: in the user data dir)")]
FACE_ROWS_SHOWN = 60


def open_gallery_for(model: str | None, gallery: Path | None, detector: DetectorName, threads: int = 1,
                     create: bool = True, normalisation: tuple = (None, None, None), read_only: bool = False):
    """The embedder and the gallery bound to it (refused if the gallery belongs to another model or alignment).
    Without ``model``, the model the gallery remembers."""
    from edgeface.recognize.gallery import Gallery, gallery_model, model_ref
    from edgeface.vision.detector_options import alignment_of
    from edgeface.vision.embed import embedder_identity, load_embedder

    mean, scale, channels = normalisation
    model = model if model is not None else gallery_model(gallery)
    embedder = load_embedder(model, threads=threads, mean=mean, scale=scale, channels=channels)
    alignment = alignment_of(detector, embedder.alignment)
    return embedder, Gallery(gallery, embedder_identity(embedder), embedder.size, create=create, alignment=alignment,
                             read_only=read_only, model=model_ref(model))


@app.command("enroll", rich_help_panel="4. recognise on the device")
def enroll_command(
    name: Annotated[Optional[str], typer.Argument(help="the person's name")] = None,
    images: Annotated[Optional[list[Path]], typer.Argument(help="photos of that person")] = None,
    folder: Annotated[Optional[Path], typer.Option("--dir", help="enrol <person>/<images> folders at once")] = None,
    model: ModelOpt = None,
    gallery: GalleryOpt = None,
    detector: DetectorOpt = DetectorName.yunet,
    detect_size: DetectSize = DEFAULT_DETECT_SIZE,
    input_mean: InputMean = None,
    input_scale: InputScale = None,
    channels: Channels = None,
    store_faces: Annotated[bool, typer.Option(
        help="keep each enrolled face (a small crop) so 'gallery upgrade' can move the gallery to a new model; "
             "--no-store-faces keeps templates only")] = True,
    json_out: Json = False,
) -> None:
    """Detect, quality-check (one face, size, head turn, sharpness), embed and store templates for one or many
    people."""
    check_detect_size(detect_size)
    from edgeface.recognize.enroll import enrol, person_folders
    from edgeface.report_format import print_json, print_table
    from edgeface.vision.detect import FaceFinder

    if folder is not None:
        people = person_folders(folder)
    elif name and images:
        people = {name: list(images)}
    else:
        raise EdgefaceError("give NAME IMAGE... or --dir DIR")
    embedder, store = open_gallery_for(model, gallery, detector, normalisation=(input_mean, input_scale, channels))
    finder = FaceFinder(detector.value, detect_size=detect_size, alignment=embedder.alignment)
    results = [enrol(store, person, paths, finder, embedder, store_faces) for person, paths in people.items()]
    if json_out:
        print_json([r.__dict__ for r in results])
    else:
        print_table(f"enrolled into {store.path}", ["person", "accepted", "rejected", "already enrolled", "templates"],
                    [(r.name, len(r.accepted), len(r.rejected), len(r.skipped), r.templates) for r in results])
        for r in results:
            for path, why in r.rejected.items():
                print(f"rejected {path}: {why}", file=sys.stderr)
        skipped = sum(len(r.skipped) for r in results)
        if skipped:
            print(f"skipped {skipped} photo(s) already in the gallery (same file contents)", file=sys.stderr)
    if not any(r.accepted or r.skipped for r in results):
        raise EdgefaceError("no photo was accepted")


gallery_app = typer.Typer(help="List, remove, rename, export and import enrolled people.", no_args_is_help=True)
app.add_typer(gallery_app, name="gallery", rich_help_panel="4. recognise on the device")


def _plain_gallery(gallery: Path | None):
    from edgeface.recognize.gallery import Gallery

    return Gallery(gallery, create=False)


@gallery_app.command("list")
def gallery_list(
    gallery: GalleryOpt = None,
    name: Annotated[Optional[str], typer.Option(help="only people whose name contains this (any case)")] = None,
    limit: Annotated[int, typer.Option(help="list at most this many people (0: all)", min=0)] = 50,
    json_out: Json = False,
) -> None:
    """How many people and templates, the model, and the first --limit people (by name) with their templates."""
    from edgeface.report_format import print_json, print_table

    store = _plain_gallery(gallery)
    store.check()
    counts, people = store.counts(), store.people(name, limit or None)
    if json_out:
        print_json({"gallery": str(store.path), "model": store.meta("model"),
                    "model_sha256": store.meta("model_sha256"), "total_people": counts["people"],
                    "total_templates": counts["templates"], "people": people})
        return
    print_table(f"{store.path}: {counts['people']} people, {counts['templates']} templates (model "
                f"{store.meta('model') or str(store.meta('model_sha256'))[:12]})", ["person", "templates", "quality"],
                [(p["name"], p["templates"], p["quality"]) for p in people])
    if len(people) == limit:
        print(f"the first {limit} people{f' matching {name!r}' if name else ''} by name: --limit 0 lists all, --name "
              "filters", file=sys.stderr)


def say(message: str, payload: dict, json_out: bool) -> None:
    """One line for people, or the same facts as JSON."""
    from edgeface.report_format import print_json

    if json_out:
        print_json(payload)
    else:
        print(message)


@gallery_app.command("upgrade")
def gallery_upgrade(
    model: ModelOpt = None,
    gallery: GalleryOpt = None,
    detector: DetectorOpt = DetectorName.yunet,
    detect_size: DetectSize = DEFAULT_DETECT_SIZE,
    json_out: Json = False,
) -> None:
    """Move the gallery to MODEL (default: the shipped one): every enrolled face is re-embedded from the face the
    gallery keeps, all at once or not at all; galleries without kept faces name the people to enrol again."""
    check_detect_size(detect_size)
    from edgeface.recognize.gallery import model_ref
    from edgeface.recognize.upgrade import upgrade_gallery
    from edgeface.vision.detect import FaceFinder
    from edgeface.vision.embed import load_embedder

    embedder = load_embedder(model)
    finder = FaceFinder(detector.value, detect_size=detect_size, alignment=embedder.alignment)
    store = _plain_gallery(gallery)
    result = upgrade_gallery(store, finder, embedder, model_ref(model))
    what = (f"re-embedded {result['templates']} templates of {result['people']} people with {embedder.name} "
            f"(model {str(result['model_before'])[:12]} -> {result['model_after'][:12]}; {result['found_again']} "
            "faces found again on their kept crops, the others aligned from their stored landmarks)"
            if result["upgraded"] else f"{store.path} is already on {embedder.name}: nothing to do")
    say(what, {**result, "model": embedder.name}, json_out)


@gallery_app.command("remove")
def gallery_remove(name: str, gallery: GalleryOpt = None, json_out: Json = False) -> None:
    """Delete a person and all their templates."""
    store = _plain_gallery(gallery)
    store.remove(name)
    say(f"removed {name}", {"gallery": str(store.path), "removed": name}, json_out)


@gallery_app.command("rename")
def gallery_rename(old: str, new: str, gallery: GalleryOpt = None, json_out: Json = False) -> None:
    """Rename a person."""
    store = _plain_gallery(gallery)
    store.rename(old, new)
    say(f"renamed {old} -> {new}", {"gallery": str(store.path), "renamed": old, "to": new}, json_out)


@gallery_app.command("export")
def gallery_export(out: Path, gallery: GalleryOpt = None, json_out: Json = False) -> None:
    """Write a portable .npz (plain arrays + JSON header, no pickle), mode 0600."""
    store = _plain_gallery(gallery)
    path = store.export(out)
    count = sum(p["templates"] for p in store.people())
    say(f"wrote {path} ({count} templates)", {"gallery": str(store.path), "export": str(path), "templates": count},
        json_out)


@gallery_app.command("import")
def gallery_import(file: Path, gallery: GalleryOpt = None, json_out: Json = False) -> None:
    """Merge an exported gallery made with the same model; photos already in the gallery are skipped."""
    from edgeface.recognize.gallery import Gallery, read_export

    export = read_export(file)  # checked whole before a gallery is opened, let alone created
    store = Gallery(gallery)
    result = store.import_export(export)
    say(f"imported {result['added']} templates; skipped {result['skipped_duplicates']} already in the gallery",
        {"gallery": str(store.path), "import": str(file), **result}, json_out)


EventsOpt = Annotated[Optional[list[str]], typer.Option(
    "--events", help="also send debounced arrived/left events to mqtt(s)://HOST[:PORT]/TOPIC, http(s)://URL (POST) "
                     "or FILE.jsonl; repeatable")]
UnknownEvents = Annotated[bool, typer.Option(help="events for faces that match nobody (one per face track)")]
Snapshots = Annotated[bool, typer.Option(help="MQTT: each arrival's face as a JPEG on its person's snapshot topic")]
HaDiscovery = Annotated[bool, typer.Option("--ha-discovery", help="MQTT: announce a presence sensor per enrolled "
                                                                  "person to Home Assistant (MQTT discovery)")]
MqttCa = Annotated[Optional[Path], typer.Option(help="mqtts://: the CA certificate that signed the broker's")]
MqttPasswordFile = Annotated[Optional[Path], typer.Option(
    help="file holding the MQTT password (or set EDGEFACE_MQTT_PASSWORD; never in the URL)")]


def event_options(unknown_events: bool, snapshots: bool, ha_discovery: bool, mqtt_ca: Path | None,
                  mqtt_password_file: Path | None):
    from edgeface.recognize.events import EventOptions

    return EventOptions(unknown=unknown_events, snapshots=snapshots, discovery=ha_discovery, mqtt_ca=mqtt_ca,
                        mqtt_password_file=mqtt_password_file)


@app.command("recognize", rich_help_panel="4. recognise on the device")
def recognize_command(
    source: Annotated[str, typer.Option(help="camera index, video file, rtsp:// URL, image or folder of images")],
    model: ModelOpt = None,
    gallery: GalleryOpt = None,
    threshold: ThresholdOpt = None,
    detector: DetectorOpt = DetectorName.yunet,
    detect_size: DetectSize = DEFAULT_DETECT_SIZE,
    min_face: MinFace = DEFAULT_MIN_FACE,
    input_mean: InputMean = None,
    input_scale: InputScale = None,
    channels: Channels = None,
    threads: Threads = 1,
    output: Annotated[Optional[Path], typer.Option("--output", "--out", "-o", help="write annotated frames to this "
                                                                             "video (.mp4)")] = None,
    show: Annotated[bool, typer.Option(help="show annotated frames in a window")] = False,
    max_frames: Annotated[int, typer.Option(help="stop after this many frames (0: until the source ends)")] = 0,
    smooth: Annotated[int, typer.Option(help="decide on the mean embedding of a face track's last N frames")] = 5,
    confirm: Annotated[int, typer.Option(help="name a face track once it matched the same person in N frames in a "
                                              "row (video and cameras; photos at once)")] = 3,
    max_turn: Annotated[Optional[float], typer.Option(
        help="faces turned further (nose tip offset in half eye-distances, 1 ~ 40 degrees) are reported unknown "
             "without matching; default 1.2")] = None,
    loop: Annotated[bool, typer.Option(help="replay a video file from the start when it ends")] = False,
    max_seconds: Annotated[float, typer.Option(help="stop after this many seconds (0: no limit)")] = 0,
    profile: Annotated[bool, typer.Option(help="print per-stage times")] = False,
    events: EventsOpt = None,
    unknown_events: UnknownEvents = True,
    snapshots: Snapshots = False,
    ha_discovery: HaDiscovery = False,
    mqtt_ca: MqttCa = None,
    mqtt_password_file: MqttPasswordFile = None,
    overlay_fps: Annotated[bool, typer.Option(help="draw the FPS counter on --output/--show frames")] = False,
    camera: Annotated[Optional[str], typer.Option(help="the camera's name in events (default: the source, its "
                                                        "password hidden)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="one JSON event per recognised face, per line")] = False,
) -> None:
    """Recognise enrolled people in a camera, video, stream or images; unknown faces are reported as unknown."""
    check_detect_size(detect_size)
    check_min_face(min_face)
    from edgeface.recognize.loop import Recognizer, check_tracking, run
    from edgeface.report_format import print_table
    from edgeface.vision.quality import MAX_TURN

    check_tracking(smooth, MAX_TURN if max_turn is None else max_turn, confirm)
    if threshold is not None:
        check_threshold(threshold)
    embedder, store = open_gallery_for(model, gallery, detector, threads=threads, create=False,
                                       normalisation=(input_mean, input_scale, channels), read_only=True)
    limit = threshold if threshold is not None else embedder.threshold
    if limit is None:
        raise EdgefaceError("this model has no calibrated threshold in its manifest: pass --threshold "
                            "(or run edgeface eval MODEL --save-threshold)")
    from edgeface.vision.embed import threshold_warning

    if threshold is None and (warning := threshold_warning(embedder)):
        print(f"edgeface: warning: {warning}", file=sys.stderr)
    face_rows: list[dict] = []  # the first FACE_ROWS_SHOWN, for the table
    total = [0]

    def keep_rows(rows: list[dict]) -> None:
        total[0] += len(rows)
        face_rows.extend(rows[: FACE_ROWS_SHOWN - len(face_rows)])

    recognizer = Recognizer(embedder, store, limit, detector=detector.value, threads=threads, smooth=smooth,
                            detect_size=detect_size, min_face=min_face, confirm=confirm,
                            **({} if max_turn is None else {"max_turn": max_turn}))
    summary = run(source, recognizer, output=output, show=show, json_events=json_out, max_frames=max_frames,
                  loop=loop, max_seconds=max_seconds, events=events, overlay_fps=overlay_fps,
                  on_faces=None if json_out else keep_rows, label=camera,
                  event_options=event_options(unknown_events, snapshots, ha_discovery, mqtt_ca, mqtt_password_file))
    if json_out:
        print(json.dumps({"summary": summary}))
        return
    shown, source = face_rows, summary["source"]  # the source as it may be shown (no password)
    print_table(f"faces in {source}", ["file / frame", "name", "score", "box x0,y0,x1,y1", "note"],
                [(Path(r["source"]).name if r["source"] != source else r["frame"], r["name"],
                  "" if r["score"] is None else f"{r['score']:.3f}", ", ".join(f"{v:.0f}" for v in r["box"]),
                  r.get("reason", "")) for r in shown])
    if total[0] > len(shown):
        print(f"... and {total[0] - len(shown)} more faces (--json lists every one)")
    print_table(f"recognize {source}", ["", "value"], [
        ("frames", summary["frames"]), ("faces", summary["faces"]), ("FPS", summary["fps"]),
        ("dropped (stale) frames", summary["dropped_frames"]), ("unreadable frames", summary["unreadable_frames"]),
        *((f"seen: {k}", v) for k, v in sorted(summary["names"].items())),
        *((f"events to {e['sink']}", f"{e['sent']} sent, {e['dropped']} dropped, {e['failed']} failed")
          for e in summary.get("events", [])),
        *((("video", f"{video['path']} ({video['codec']})"),) if (video := summary.get("video")) else ())])
    if summary.get("video") and summary["video"]["codec"] != "H.264":
        print("note: this OpenCV build has no H.264 encoder; for a file every player and browser takes: ffmpeg -i "
              f"{summary['video']['path']} -c:v libx264 -pix_fmt yuv420p out-h264.mp4", file=sys.stderr)
    if profile:
        print_table("per-stage time", ["stage", "mean ms", "p50 ms", "p90 ms", "share"],
                    [(k, v["mean_ms"], v["p50_ms"], v["p90_ms"], f"{100 * v['share']:.0f} %")
                     for k, v in summary["stages"].items()])


@app.command("serve", rich_help_panel="4. recognise on the device")
def serve_command(
    gallery: GalleryOpt = None,
    source: Annotated[Optional[str], typer.Option(
        help="camera index, video file or rtsp:// URL to recognise continuously (none: the API alone)")] = None,
    camera: Annotated[Optional[str], typer.Option(help="the camera's name in events (default: the source)")] = None,
    model: ModelOpt = None,
    threshold: ThresholdOpt = None,
    detector: DetectorOpt = DetectorName.yunet,
    detect_size: DetectSize = DEFAULT_DETECT_SIZE,
    min_face: MinFace = DEFAULT_MIN_FACE,
    threads: Threads = 1,
    host: Annotated[str, typer.Option(help="address to listen on; anything but loopback needs --token-file")] =
    "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port, printed at start)")] = 8080,
    token_file: Annotated[Optional[Path], typer.Option(
        help="file (mode 600) holding the token every request must carry")] = None,
    loop: Annotated[bool, typer.Option(help="replay a video --source from the start when it ends")] = False,
    events: EventsOpt = None,
    unknown_events: UnknownEvents = True,
    snapshots: Snapshots = False,
    ha_discovery: HaDiscovery = False,
    mqtt_ca: MqttCa = None,
    mqtt_password_file: MqttPasswordFile = None,
    stream_fps: Annotated[float, typer.Option(help="at most this many live-view frames a second per viewer")] = 15.0,
) -> None:
    """Recognise on a camera and serve a REST API (/docs) and a web page: enrol from the browser, watch, see who
    came."""
    from edgeface.serve.server import serve
    from edgeface.serve.service import ServeConfig

    check_detect_size(detect_size)
    if threshold is not None:
        check_threshold(threshold)
    serve(ServeConfig(gallery=gallery, model=model, source=source, camera=camera, detector=detector.value,
                      detect_size=detect_size, threshold=threshold, threads=threads, min_face=min_face, loop=loop,
                      events=list(events or []), stream_fps=stream_fps,
                      event_options=event_options(unknown_events, snapshots, ha_discovery, mqtt_ca,
                                                  mqtt_password_file)), host, port, token_file)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback.

    Anything unexpected is also one line (exit 3) naming the exception; EDGEFACE_DEBUG=1 shows the traceback.
    """
    try:
        code = app(standalone_mode=False)  # click's own errors come back here, to become one line too
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("edgeface: interrupted", file=sys.stderr)
        sys.exit(130)
    except EdgefaceError as exc:
        fail(str(exc), 2)
    except KeyboardInterrupt:
        print("edgeface: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (``edgeface ... | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except MemoryError:
        fail("out of memory (is the input far larger than it should be?)", 2)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}", 2)
    except Exception as exc:
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            # a usage error from click (which typer carries inside): bad option, missing argument, no such command
            ctx = getattr(exc, "ctx", None)
            command = ctx.command_path if ctx else "edgeface"
            if not exc.format_message():  # no command given: the help was printed, nothing went wrong
                sys.exit(0)
            fail(f"{exc.format_message()} (see '{command} --help')", 2)
        if os.environ.get("EDGEFACE_DEBUG"):
            raise
        fail(f"internal error {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''} "
             "(EDGEFACE_DEBUG=1 shows the traceback; please report it)", 3)


def fail(message: str, code: int) -> None:
    with contextlib.suppress(OSError):
        print(f"edgeface: error: {message}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
