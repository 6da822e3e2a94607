"""The ``edgeface`` command: parse options, call one library function, print a table or ``--json``.

No logic lives here. Training-half modules are imported inside their commands so the device half of the CLI
never imports TensorFlow.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeface import __version__
from edgeface.errors import EdgefaceError

app = typer.Typer(help="Make face-recognition models small and fast, prove their accuracy, run them on the edge.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Prepare face datasets: detect, align, write 112x112 crops + a manifest.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

ModelArg = Annotated[Optional[str], typer.Argument(
    help="a .tflite file, 'dlib', or a Keras model; default: the shipped model")]
Threads = Annotated[int, typer.Option("--threads", "-t", help="CPU threads for inference")]
Json = Annotated[bool, typer.Option("--json", help="print machine-readable JSON instead of a table")]
InputMean = Annotated[Optional[float], typer.Option(
    help="input = (pixel - mean) * scale; default from the manifest, else 0")]
InputScale = Annotated[Optional[float], typer.Option(
    help="input = (pixel - mean) * scale; default from the manifest, else 1")]
Channels = Annotated[Optional[str], typer.Option(help="RGB or BGR; default from the manifest, else RGB")]


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgeface {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                               help="show the version and exit")] = False) -> None:
    """edgeface: compress, export, evaluate, benchmark and deploy face-recognition models."""


@app.command("eval")
def eval_command(
    lfw_dir: Annotated[Path, typer.Option(help="LFW image root (<Name>/<Name>_NNNN.jpg)")],
    pairs: Annotated[Path, typer.Option(help="the official View 2 pairs.txt")],
    model: ModelArg = None,
    flip: Annotated[bool, typer.Option(help="average the embeddings of each face and its mirror image")] = False,
    threads: Threads = 2,
    input_mean: InputMean = None,
    input_scale: InputScale = None,
    channels: Channels = None,
    plot: Annotated[Optional[Path], typer.Option(help="write the ROC curve to this PNG")] = None,
    json_out: Json = False,
) -> None:
    """Score a model on LFW View 2: 10-fold accuracy +- SE, ROC AUC, TAR at FAR 1e-3 and 1e-2."""
    from edgeface.evaluate.lfw import evaluate_lfw
    from edgeface.report_format import pct, print_json, print_table
    from edgeface.vision.embed import load_embedder

    embedder = load_embedder(model, threads=threads, flip=flip, mean=input_mean, scale=input_scale,
                             channels=channels)
    report = evaluate_lfw(embedder, lfw_dir, pairs, workers=threads, plot=plot)
    if json_out:
        print_json(report)
        return
    tar = report["tar_at_far"]
    print_table(f"LFW View 2: {report['model']}", ["metric", "value"], [
        ("accuracy (10-fold)", f"{pct(report['accuracy'])} +- {100 * report['accuracy_se']:.2f}"),
        ("ROC AUC", f"{report['roc_auc']:.5f}"),
        ("TAR @ FAR 1e-3", pct(tar["0.001"])),
        ("TAR @ FAR 1e-2", pct(tar["0.01"])),
        ("best global threshold (cosine)", f"{report['threshold']:.4f}"),
        ("threshold @ FAR 1e-3", f"{report['threshold_at_far']['0.001']:.4f}"),
        ("pairs / images", f"{report['n_pairs']} / {report['n_images']}"),
        ("detection failed (centre crop)", str(report["n_detect_failed"])),
        ("seconds", f"{report['seconds']:.1f}"),
    ])


@app.command("info")
def info_command(model: ModelArg = None, json_out: Json = False) -> None:
    """Show a .tflite model's tensors, runtime backend and manifest."""
    from edgeface.report_format import print_json, print_table
    from edgeface.runtime.info import model_info

    info = model_info(model)
    if json_out:
        print_json(info)
        return
    rows = [(k, v) for k, v in info.items() if not isinstance(v, (dict, list))]
    rows += [(f"{t['role']} {t['name']}", f"{t['shape']} {t['dtype']} q={t['scale']:.4g},{t['zero_point']}")
             for t in info["tensors"]]
    print_table(f"model {info['file']}", ["field", "value"], rows)


@data_app.command("prepare")
def data_prepare_command(
    src: Annotated[Path, typer.Argument(help="image root: <person>/<img> folders, a flat folder, or CelebA")],
    dst: Annotated[Path, typer.Argument(help="output root: <identity>/<img>.jpg aligned 112x112 + manifest.jsonl")],
    identities: Annotated[Optional[Path], typer.Option(help="CelebA-style 'filename identity' list")] = None,
    layout: Annotated[str, typer.Option(help="auto, folders, flat or celeba")] = "auto",
    exclude_pairs: Annotated[Optional[Path], typer.Option(
        help="skip every person named in this LFW pairs.txt (keeps View 2 out of training)")] = None,
    prefix: Annotated[str, typer.Option(help="prefix for identity names (keeps datasets apart)")] = "",
    workers: Annotated[int, typer.Option(help="worker processes")] = 2,
    limit: Annotated[int, typer.Option(help="stop after this many source images (0: all)")] = 0,
    json_out: Json = False,
) -> None:
    """Detect, align and write every face of a dataset; resumable, reports images with no or several faces."""
    from edgeface.data.prepare import prepare
    from edgeface.report_format import print_json, print_table

    summary = prepare(src, dst, identities=identities, layout=layout, exclude_pairs=exclude_pairs, prefix=prefix,
                      workers=workers, limit=limit)
    if json_out:
        print_json(summary)
        return
    print_table(f"prepared {dst}", ["count", "images"], [(k, v) for k, v in summary.items() if k != "dst"])


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        app()
    except EdgefaceError as exc:
        print(f"edgeface: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("edgeface: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
