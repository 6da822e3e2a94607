"""Compression commands (TensorFlow inside the commands): prune, lowrank, cluster, quantize, import, export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeface.cli.base import app
from edgeface.cli.options import (
    AlignmentName,
    Channels,
    ExportFormat,
    InputMean,
    InputScale,
    IOType,
    Json,
    Precision,
    QuantMode,
    Recipe,
    finetune_options,
    finite,
    keras_step_options,
)
from edgeface.errors import EdgefaceError


def print_compression(result: dict, json_out: bool) -> None:
    from edgeface.tables import print_json, print_table

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
@keras_step_options()
def prune_command(
    step: dict,
    sparsity: Annotated[float, typer.Option(help="magnitude pruning: fraction of Conv2D/Dense weights set to 0",
        callback=finite)] = 0.5,
    structured: Annotated[bool, typer.Option(help="remove whole channels instead (cuts FLOPs and latency)")] = False,
    ratio: Annotated[float, typer.Option(help="--structured: fraction of channels removed per group",
        callback=finite)] = 0.5,
    flops: Annotated[Optional[float], typer.Option(help="--structured, instead of --ratio: remove this fraction "
                                                        "of FLOPs, each group's share chosen by how much it changes "
                                                        "the embedding (needs --data)", callback=finite)] = None,
    steps: Annotated[int, typer.Option(help="--structured: reach --ratio in this many prune + fine-tune steps")] = 1,
    relation_weight: Annotated[float, typer.Option(help="--structured: weight of the batch relation loss beside "
                                                        "the cosine to the original", callback=finite)] = 0.0,
    json_out: Json = False,
) -> None:
    """Magnitude pruning (TFMOT) or structured channel pruning, fine-tuned by distillation from the original."""
    from edgeface.training.compress.io import face_set, load_model, require_faces, save_compressed
    from edgeface.training.compress.prune import magnitude_prune, magnitude_step, structured_prune, structured_step

    keras_model, manifest = load_model(step["model"])
    face_data = face_set(keras_model, manifest, step["data"], step["faces"])
    epochs = step["epochs"]
    if structured:
        pruned, report = structured_prune(keras_model, ratio, face_data, epochs, steps=steps,
                                          relation_weight=relation_weight, flops=flops)
        done = structured_step(ratio, flops, steps, relation_weight, epochs if face_data else 0)
    else:
        pruned, report = magnitude_prune(keras_model, sparsity, require_faces(face_data, "prune"), epochs)
        done = magnitude_step(sparsity, epochs)
    print_compression({**save_compressed(pruned, step["out"], manifest, done), "report": report}, json_out)


@app.command("lowrank", rich_help_panel="2. compress & export")
@keras_step_options(epochs=1.0)
def lowrank_command(
    step: dict,
    rank: Annotated[Optional[int], typer.Option(help="rank of every factorised layer")] = None,
    energy: Annotated[Optional[float], typer.Option(help="keep this fraction of each kernel's spectral energy",
        callback=finite)] = None,
    json_out: Json = False,
) -> None:
    """SVD-factorise Dense and Conv2D kernels into two thinner layers (a k x k conv with R filters, then a 1x1)
    where that saves parameters."""
    from edgeface.training.compress.io import face_set, load_model, save_compressed
    from edgeface.training.compress.lowrank import lowrank, lowrank_step

    keras_model, manifest = load_model(step["model"])
    data, epochs = step["data"], step["epochs"]
    factored, report = lowrank(keras_model, face_set(keras_model, manifest, data, step["faces"]), rank, energy,
                               epochs)
    done = lowrank_step(rank, energy, epochs if data else 0)
    print_compression({**save_compressed(factored, step["out"], manifest, done), "report": report}, json_out)


@app.command("cluster", rich_help_panel="2. compress & export")
@keras_step_options(epochs=1.0)
def cluster_command(
    step: dict,
    clusters: Annotated[int, typer.Option(help="distinct weight values per kernel")] = 16,
    preserve_sparsity: Annotated[bool, typer.Option(help="keep the zeros of an earlier pruning")] = False,
    json_out: Json = False,
) -> None:
    """Weight clustering (TFMOT), fine-tuned by distillation."""
    from edgeface.training.compress.cluster import cluster, cluster_step
    from edgeface.training.compress.io import face_set, load_model, require_faces, save_compressed

    keras_model, manifest = load_model(step["model"])
    faces_set = require_faces(face_set(keras_model, manifest, step["data"], step["faces"]), "cluster")
    clustered = cluster(keras_model, clusters, faces_set, preserve_sparsity, step["epochs"])
    done = cluster_step(clusters, preserve_sparsity, step["epochs"])
    print_compression(save_compressed(clustered, step["out"], manifest, done), json_out)


@app.command("quantize", rich_help_panel="2. compress & export")
@finetune_options()
def quantize_command(
    model: Annotated[Path, typer.Argument(help="a tf_keras model (.keras/.h5), or a float .tflite (yours, imported "
                                          "with edgeface import, or a shipped one by name: default-float32, "
                                          "small-float32)")],
    finetune: dict,
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
             "percentage points of the float model (needs --lfw-dir, --pairs)", callback=finite)] = None,
    lfw_dir: Annotated[Optional[Path], typer.Option(help="with --max-drop: LFW image root")] = None,
    pairs: Annotated[Optional[Path], typer.Option(help="with --max-drop: the View 2 pairs.txt")] = None,
    rewrite: Annotated[bool, typer.Option(help=".tflite: rewrite PReLU and stride-1 PADs into ops XNNPACK runs "
                                          "fast in int8 (exact in float)")] = True,
    layers: Annotated[bool, typer.Option("--layers", help=".tflite: print the per-layer error report")] = False,
    input_mean: InputMean = None,
    input_scale: InputScale = None,
    channels: Channels = None,
    json_out: Json = False,
) -> None:
    """Quantize a Keras model (post-training or quantization-aware) or a float .tflite (LiteRT quantizer, optionally
    within an LFW accuracy budget), straight to a .tflite with manifest."""
    from edgeface.default_model import resolve_model
    from edgeface.tables import print_json, print_table

    model = Path(resolve_model(str(model)))  # a shipped model's name, or the path as given
    if not model.exists():
        raise EdgefaceError(f"model not found: {model}")
    kind, kinds = (".tflite", [r.value for r in Recipe]) if model.suffix == ".tflite" else \
        ("Keras", [m.value for m in QuantMode])
    if precision not in kinds:
        raise EdgefaceError(f"--precision {precision!r} is not one for a {kind} model: choose one of "
                            f"{', '.join(kinds)}")
    if model.suffix == ".tflite":
        from edgeface.quantize.tflite_quantize import quantize_file

        log = quantize_file(model, out, precision, (input_mean, input_scale, channels), calib_data or [], calib,
                            rewrite, max_drop, lfw_dir, pairs, report_layers=layers)
        if json_out:
            print_json(log)
            return
        print_quantize_log(log)
        return
    from edgeface.training.compress.quantize import quantize_keras

    info = quantize_keras(model, out, precision, calib_data or [], finetune["data"] or [], calib, io.value,
                          finetune["epochs"], finetune["faces"])
    if json_out:
        print_json(info)
        return
    print_table(f"quantized -> {info['model']}", ["", "value"],
                [("mode", precision), ("size bytes", info["size_bytes"])])


def print_quantize_log(log: dict) -> None:
    from edgeface.tables import print_table

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
    from edgeface.tables import print_json, print_table
    from edgeface.training.model_import import import_model

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
    from edgeface.tables import print_json, print_table
    from edgeface.training import check_keras_source

    check_keras_source(model)
    from edgeface.training.export import calibration_faces, export

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
