"""Training-half commands: prepare data, list architectures, train, distill (TensorFlow inside the commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgeface.cli.base import app, data_app
from edgeface.cli.options import (
    DetectorOpt,
    DetectSize,
    Head,
    Json,
    Layout,
    StrategyName,
    ViewKind,
    Workers,
    finite,
    option_group,
)
from edgeface.vision.detector_options import (
    DEFAULT_DETECT_SIZE,
    DetectorName,
)


@data_app.command("prepare")
def data_prepare_command(
    src: Annotated[Path, typer.Argument(help="image root: <person>/<img> folders, a flat folder, or CelebA")],
    dst: Annotated[Path, typer.Argument(help="output root: <identity>/<img>.jpg aligned 112x112 + manifest.jsonl")],
    identities: Annotated[Optional[Path], typer.Option(help="CelebA-style 'filename identity' list")] = None,
    layout: Annotated[Layout, typer.Option(help="how SRC is organised (auto: guess from what is there)")] = Layout.auto,
    exclude_pairs: Annotated[Optional[Path], typer.Option(
        help="skip every person named in this LFW pairs.txt (keeps View 2 out of training)")] = None,
    prefix: Annotated[str, typer.Option(help="prefix for identity names (keeps datasets apart)")] = "",
    workers: Workers = 2,
    limit: Annotated[int, typer.Option(help="stop after this many source images (0: all)")] = 0,
    detector: DetectorOpt = DetectorName.yunet,
    detect_size: DetectSize = DEFAULT_DETECT_SIZE,
    alignment: Annotated[Optional[str], typer.Option(
        help="yunet-dlib150: cut dlib's 150x150 chip from YuNet's points (to fine-tune --arch dlib-resnet) instead "
             "of the 112x112 ArcFace crop")] = None,
    json_out: Json = False,
) -> None:
    """Detect, align and write every face of a dataset; resumable, reports images with no or several faces."""
    from edgeface.data.prepare import prepare
    from edgeface.tables import print_json, print_table

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
    kind: Annotated[ViewKind, typer.Option(
        help="camera: everyday damage; harsh: hard cast shadow, dim room at the gain limit, night camera")
    ] = ViewKind.camera,
    workers: Workers = 2,
    json_out: Json = False,
) -> None:
    """Damaged views of every prepared face (grey, shading, shadow, blur, small-face detail, JPEG, occlusion,
    colour; or harsh light) for a teacher to label: a prepared folder that distill takes like any other; resumable."""
    from edgeface.data.views import make_views
    from edgeface.tables import print_json, print_table

    summary = make_views(src, dst, per_face=per_face, seed=seed, workers=workers, kind=kind.value)
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


LR = Annotated[float, typer.Option(help="peak learning rate (AdamW, warm-up then cosine decay)", callback=finite)]


Width = Annotated[Optional[float], typer.Option(help="channel width multiplier (default: the architecture's)",
    callback=finite)]


InputSize = Annotated[Optional[int], typer.Option(
    help="input size in px (default: the architecture's); prepared faces are area-resampled to it, as at runtime")]


Resume = Annotated[bool, typer.Option(help="continue from the checkpoint in --out")]


Strategy = Annotated[StrategyName, typer.Option(help="none, mirrored (all local devices) or multiworker (TF_CONFIG)")]


ValLFW = Annotated[Optional[Path], typer.Option(help="LFW image root: validate on View 2 every --val-every epochs")]


ValPairs = Annotated[Optional[Path], typer.Option(help="pairs.txt for validation")]


ValEvery = Annotated[int, typer.Option(help="epochs between LFW validations")]


Init = Annotated[Optional[Path], typer.Option(help="start from this trained model's weights (same arch and width): "
                                                 "a .keras model or its float32 .tflite export; a "
                                                 "checkpoint.keras also hands on its margin head")]


Margin = Annotated[float, typer.Option(help="angular (arcface) or cosine (cosface) margin", callback=finite)]


Scale = Annotated[float, typer.Option(help="logit scale of the margin heads", callback=finite)]


Seed = Annotated[int, typer.Option(help="seed of initial weights, shuffling and augmentation")]


# the options of a training run, shared by train and distill: declared once, received as one ``run: dict``
RUN_OPTIONS: dict[str, tuple[Any, Any]] = {
    "arch": (Arch, "mobilefacenet"), "width": (Width, None), "input_size": (InputSize, None), "epochs": (Epochs, 20),
    "batch": (Batch, 128), "lr": (LR, 2e-3), "resume": (Resume, False), "strategy": (Strategy, "none"),
    "val_lfw_dir": (ValLFW, None), "val_pairs": (ValPairs, None), "val_every": (ValEvery, 5), "init": (Init, None),
    "seed": (Seed, 0), "margin": (Margin, 0.3), "scale": (Scale, 32.0),
}
run_options = option_group(RUN_OPTIONS, tuple(RUN_OPTIONS), "run", dict)


def train_config(out: Path, run: dict):
    """The training loop's config from a command's ``--out`` and run options (margin and scale go to the head)."""
    from edgeface.training.train.loop import TrainConfig

    settings = {k: v for k, v in run.items() if k not in ("margin", "scale")}
    return TrainConfig(out=out, **{**settings, "strategy": getattr(run["strategy"], "value", run["strategy"])})


def print_training(summary: dict, json_out: bool) -> None:
    from edgeface.tables import print_json, print_table

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
def models_command(
    architectures: Annotated[bool, typer.Option("--architectures", help="also the architectures 'train' and "
                                                "'distill' build (--arch)")] = False,
    json_out: Json = False,
) -> None:
    """The shipped models every command takes by name (--model NAME), and with --architectures the networks the
    training commands build."""
    from edgeface.default_model import shipped_models
    from edgeface.tables import print_json, print_table

    shipped = shipped_models()
    rows = []
    if architectures:
        from edgeface.training.architectures import describe_architectures

        rows = describe_architectures()
    if json_out:
        print_json({"shipped": shipped, **({"architectures": rows} if architectures else {})})
        return
    print_table("shipped models (--model NAME)", ["name", "MB", "LFW %", "TAR@1e-3 %", "threshold", "GFLOPs", "for"],
                [(r["name"], f"{r['size_bytes'] / 1e6:.1f}",
                  "-" if r["lfw_accuracy"] is None else f"{100 * r['lfw_accuracy']:.2f}",
                  "-" if r["tar_at_far_1e-3"] is None else f"{100 * r['tar_at_far_1e-3']:.1f}",
                  "-" if r["threshold"] is None else f"{r['threshold']:.3f}",
                  "-" if r["gflops"] is None else f"{r['gflops']:.2f}", r["use"]) for r in shipped])
    if not architectures:
        return
    print_table("architectures", ["name", "input", "parameters", "GFLOPs", "embedding", "summary"],
                [(r["name"], "x".join(map(str, r["input"][:2])), f"{r['params']:,}", f"{r['flops'] / 1e9:.3f}",
                  r["embedding"], r["summary"]) for r in rows])


@app.command("train", rich_help_panel="1. data & training")
@run_options
def train_command(
    data: DataDirs,
    run: dict,
    out: Out = Path("runs/train"),
    head: Annotated[Head, typer.Option(help="classification head: plain softmax or a margin head")] = Head.arcface,
    json_out: Json = False,
) -> None:
    """Train an embedding network as an identity classifier (softmax / ArcFace / CosFace head)."""
    from edgeface.training.train.train import train

    print_training(train(data, train_config(out, run), head=head.value, margin=run["margin"], scale=run["scale"]),
                   json_out)


@app.command("distill", rich_help_panel="1. data & training")
@run_options
def distill_command(
    data: DataDirs,
    run: dict,
    teacher: Annotated[str, typer.Option(
        help="'dlib', 'dlib-port' (dlib's network on LiteRT, from face-api's weights), a .tflite or Keras model")],
    out: Out = Path("runs/distill"),
    workers: Workers = 2,
    identity_weight: Annotated[float, typer.Option(
        help="weight of an ArcFace loss on the labelled faces beside distillation (0: distillation only)",
        callback=finite)] = 0.0,
    relation_weight: Annotated[float, typer.Option(
        help="weight of the relation loss: match the teacher's similarity matrix of each batch (0: off)",
        callback=finite)] = 0.0,
    teacher_flip: Annotated[bool, typer.Option(
        help="the teacher embeds each face and its mirror and averages them (a better target)")] = False,
    centre: Annotated[bool, typer.Option(
        " /--raw-targets", help="--raw-targets: match the teacher's embeddings as they are instead of centred on "
                                "their mean (for a student that starts as the teacher: --arch dlib-resnet)")] = True,
    tail_weight: Annotated[float, typer.Option(
        help="relation loss: pairs of different faces the student puts closer than the teacher count 1 + this many "
             "times (the impostor tail a low-FAR threshold reads)", callback=finite)] = 0.0,
    clean_targets: Annotated[bool, typer.Option(
        help="a damaged view (data views) learns the teacher's embedding of the clean face it was made from, not "
             "the teacher's reading of the damage: the student learns to see through it")] = False,
    json_out: Json = False,
) -> None:
    """Train a student to reproduce a teacher's embeddings (cosine loss); works on unlabelled folders."""
    from edgeface.training.train.distill import distill

    print_training(distill(data, teacher, train_config(out, run), workers=workers, identity_weight=identity_weight,
                           margin=run["margin"], scale=run["scale"], relation_weight=relation_weight,
                           teacher_flip=teacher_flip, centre=centre, clean_targets=clean_targets,
                           tail_weight=tail_weight), json_out)
