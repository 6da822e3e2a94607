"""Measuring commands, device half: eval (LFW View 2 from a file), bench, info."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from edgeface.cli.base import app
from edgeface.cli.options import (
    Channels,
    DetectSize,
    InputMean,
    InputScale,
    Json,
    ModelArg,
    TemplateMode,
    checked,
    pipeline_options,
)
from edgeface.errors import EdgefaceError
from edgeface.recognize.config import PipelineConfig
from edgeface.runtime.threads import check_workers
from edgeface.vision.condition_names import CONDITION_HELP
from edgeface.vision.detector_options import (
    DEFAULT_DETECT_SIZE,
    DEFAULT_DETECTOR,
    DETECTOR_HELP,
)

if TYPE_CHECKING:
    from edgeface.vision.embed import Embedder


@app.command("eval", rich_help_panel="3. evaluate & benchmark")
def eval_command(
    lfw_dir: Annotated[Path, typer.Option(help="LFW image root (<Name>/<Name>_NNNN.jpg)")],
    pairs: Annotated[Path, typer.Option(help="the official View 2 pairs.txt")],
    models: Annotated[Optional[list[str]], typer.Argument(
        help="one or more .tflite files, 'dlib', Keras models or shipped names; default: the shipped model")] = None,
    flip: Annotated[bool, typer.Option(help="average the embeddings of each face and its mirror image")] = False,
    threads: Annotated[int, typer.Option("--workers", "--threads", help="processes embedding the images in "
                                                                      "parallel (1 to 4 per core)",
                                         callback=checked(lambda n: check_workers(n, "--workers/--threads")))] = 2,
    input_mean: InputMean = None,
    input_scale: InputScale = None,
    channels: Channels = None,
    plot: Annotated[Optional[Path], typer.Option(help="write the ROC curve to this PNG (one model)")] = None,
    save_threshold: Annotated[bool, typer.Option(
        help="store the FAR 1e-3 threshold and the result in the model's manifest (one model)")] = False,
    detector: Annotated[str, typer.Option(
        "--detector", help="comma-separated, one row each: " + DETECTOR_HELP)] = DEFAULT_DETECTOR,
    detect_size: DetectSize = DEFAULT_DETECT_SIZE,
    condition: Annotated[str, typer.Option(help="comma-separated, one row each; " + CONDITION_HELP)] = "plain",
    paired: Annotated[Optional[str], typer.Option(
        help="report every other model's per-fold change against this one (mean +- SE over the 10 folds)")] = None,
    hold_conditions: Annotated[bool, typer.Option(
        help="with --save-threshold: raise the threshold until FAR is also <= 3e-3 under every condition")] = False,
    same_setting: Annotated[Optional[Path], typer.Option(
        help="also every pair of these <person>/<photos> taken in one setting (your own camera's): the FAR and TAR "
             "at the model's threshold when strangers share the camera, beside LFW's (one model); with "
             "--save-threshold, raise the threshold until it holds among them too, also through harsh cameras")] = None,
    templates: Annotated[Optional[TemplateMode], typer.Option(
        help="how enrolled templates are made: single (one pass, like every probe) or flip (face and mirror "
             "averaged, probes one pass); default: as the model's manifest says. With --save-threshold it is stored "
             "with the threshold placed for it (one model)")] = None,
    json_out: Json = False,
) -> None:
    """Score models on LFW View 2: 10-fold accuracy +- SE, ROC AUC, TAR at FAR 1e-3 and 1e-2 (and the FAR at the
    model's own threshold), on the photos as they are or under camera conditions; several models, conditions or
    detectors give one row each, --paired their change against a reference."""
    from edgeface.evaluate.lfw_grid import parse_conditions, parse_detectors

    conditions, detectors = parse_conditions(condition), parse_detectors(detector)
    chosen: list[str | None] = list(models) if models else [None]
    single = len(chosen) == 1 and len(conditions) == 1 and len(detectors) == 1 and paired is None
    if (save_threshold or plot or same_setting or templates) and not single:
        raise EdgefaceError("--save-threshold, --plot, --same-setting and --templates take one model, one detector "
                            "and no --condition list or --paired")
    if hold_conditions and not save_threshold:
        raise EdgefaceError("--hold-conditions places the threshold --save-threshold stores: add --save-threshold")
    if save_threshold and conditions != ["plain"]:
        raise EdgefaceError("--save-threshold is measured on plain LFW: drop --condition (benchmarks/robustness.py "
                            "checks a threshold under every condition)")
    if save_threshold and flip:
        raise EdgefaceError("--save-threshold stores the threshold that recognize uses, which embeds without --flip: "
                            "drop --flip, or export with --flip so the file itself averages face and mirror")
    from edgeface.tables import print_json

    if not single:
        from edgeface.evaluate.lfw_grid import evaluate_grid

        rows = evaluate_grid(chosen, lfw_dir, pairs, conditions, detectors, paired, workers=threads,
                             detect_size=detect_size, flip=flip, mean=input_mean, scale=input_scale,
                             channels=channels)
        if json_out:
            print_json(rows)
        else:
            print_grid(rows)
        return
    model = chosen[0]
    if save_threshold:
        from edgeface.evaluate.lfw import check_can_save_threshold

        check_can_save_threshold(model, pairs)
    from edgeface.evaluate.lfw import evaluate_lfw
    from edgeface.vision.embed import load_embedder

    embedder = load_embedder(model, threads=threads, flip=flip, mean=input_mean, scale=input_scale,
                             channels=channels)
    if templates is not None:
        use_templates(embedder, templates.value)
    report = evaluate_lfw(embedder, lfw_dir, pairs, workers=threads, plot=plot, detector=detectors[0],
                          detect_size=detect_size, condition=conditions[0])
    if save_threshold:
        from edgeface.evaluate.lfw import save_threshold as store

        store(model, embedder, report, lfw_dir, pairs, hold_conditions, workers=threads, detector=detectors[0],
              detect_size=detect_size)
        print(f"saved threshold {report['saved_threshold']:.4f} ({report['threshold_source']}, {report['detector']} "
              f"detection) into {model} and {report['manifest']}", file=sys.stderr)
    if same_setting is not None:
        from edgeface.evaluate.same_setting import same_setting_report
        from edgeface.vision.embed import decision_threshold

        threshold = decision_threshold(embedder)
        if save_threshold:
            threshold = hold_in_setting(model, embedder, same_setting, report, workers=threads, detector=detectors[0],
                                        detect_size=detect_size)
        report["same_setting"] = same_setting_report(embedder, same_setting, threshold, workers=threads,
                                                     detector=detectors[0], detect_size=detect_size)
    if json_out:
        print_json(report)
        return
    print_report(report)


def use_templates(embedder: Embedder, mode: str) -> None:
    """Evaluate (and with --save-threshold, store) ``embedder`` with its templates made the ``mode`` way."""
    manifest = getattr(embedder, "manifest", None)
    if manifest is None:
        raise EdgefaceError(f"--templates needs a .tflite model with a manifest; {embedder.name} has none")
    manifest.templates = mode


def hold_in_setting(model: str, embedder: Embedder, root: Path, report: dict, **embedding: object) -> float:
    """Raise the threshold just saved until it holds among ``root``'s strangers through every shared camera."""
    from edgeface.evaluate.same_setting import (
        identity_photos,
        setting_threshold,
        setting_views,
        store_setting_threshold,
    )

    paths, ids = identity_photos(root)
    placed = setting_threshold(setting_views(embedder, paths, ids, f"same-setting|{root}", **embedding))
    threshold = store_setting_threshold(model, placed, f"eval --same-setting {root.name}")
    report["saved_threshold"], report["same_setting_placement"] = threshold, placed
    print(f"threshold {threshold:.4f}: holds among the strangers of {root} (needed {placed['threshold']:.4f})",
          file=sys.stderr)
    return threshold


def print_report(report: dict) -> None:
    from edgeface.tables import pct, print_table

    tar = report["tar_at_far"]
    at_threshold = [("FAR / TAR at the model's threshold", f"{report['far_at_model_threshold']:.4f} / "
                     f"{pct(report['tar_at_model_threshold'])} (threshold {report['model_threshold']:.4f})")] \
        if "model_threshold" in report else []
    gated = report.get("gated")
    if gated:  # what recognize does: faces outside the model's light gates are turned away, never named
        at_threshold.append(("... with the light gates", f"{gated['far_at_model_threshold']:.4f} / "
                             f"{pct(gated['tar_at_model_threshold'])} ({pct(gated['turned_away'])} of faces "
                             "turned away)"))
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
        *same_setting_rows(report.get("same_setting")),
    ])


def same_setting_rows(same: dict | None) -> list[tuple[str, str]]:
    from edgeface.tables import pct

    if same is None:
        return []
    return [(f"same setting ({same['dir']}): FAR / TAR at the threshold",
             f"{same['far_at_model_threshold']:.4f} / {pct(same['tar_at_model_threshold'])} "
             f"({same['people']} people, {same['impostor_pairs']:,} impostor pairs)"),
            ("same setting: threshold @ FAR 1e-3 / TAR there",
             f"{same['threshold_at_far_1e-3']:.4f} / {pct(same['tar_at_far_1e-3'])}")]


def print_grid(rows: list[dict]) -> None:
    """One line per model x detector x condition; the paired change where there is a reference."""
    from edgeface.tables import pct, print_table

    def change(row: dict) -> str:
        p = row.get("paired")
        return "" if p is None else f"{p['change_pp']:+.2f} +- {p['change_se_pp']:.2f} ({p['folds_worse']}/" \
                                    f"{p['folds']} worse)"

    print_table("LFW View 2", ["model", "detector", "condition", "accuracy", "AUC", "TAR @ 1e-3",
                               "FAR at own threshold", "paired change, pp"],
                [(row["model"], row["detector"], row["condition"],
                  f"{pct(row['accuracy'])} +- {100 * row['accuracy_se']:.2f}", f"{row['roc_auc']:.4f}",
                  pct(row["tar_at_far"]["0.001"]),
                  f"{row['far_at_model_threshold']:.4f}" if "far_at_model_threshold" in row else "-",
                  change(row)) for row in rows])


@app.command("bench", rich_help_panel="3. evaluate & benchmark")
@pipeline_options("detector", "detect_size", "detect_every", "input_mean", "input_scale", "channels")
def bench_command(
    config: PipelineConfig,
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
    json_out: Json = False,
) -> None:
    """Latency (p50/p90/p99), init time, memory, size and roofline efficiency on the light runtime."""
    from edgeface.default_model import resolve_model
    from edgeface.runtime.bench import bench, parse_threads
    from edgeface.tables import print_json, print_table

    thread_list = parse_threads(threads)
    models = [str(resolve_model(m)) for m in models or [None]]
    if ops:
        print_ops_profile(models[0], thread_list[0], xnnpack, top, json_out)
        return
    if pipeline:
        from edgeface.recognize.profile import profile_pipeline

        report = profile_pipeline(pipeline, config.but(model=models[0], threads=thread_list[0]))
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
    from edgeface.runtime.ops_profile import profile_ops
    from edgeface.tables import print_json, print_table

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


@app.command("info", rich_help_panel="3. evaluate & benchmark")
def info_command(model: ModelArg = None,
                 bytes_: Annotated[bool, typer.Option("--bytes", help="where the file's bytes go: weights, biases, "
                                                      "quantization parameters, names, metadata")] = False,
                 json_out: Json = False) -> None:
    """Show a .tflite model's tensors, runtime backend and manifest."""
    from edgeface.runtime.info import model_info
    from edgeface.tables import print_json, print_table

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
            ("templates", "face and mirror averaged at enrolment, probes one pass" if manifest.get("templates") ==
             "flip" else "one pass, like every probe"),
            ("threshold", f"{manifest['threshold']:.4f} (FAR {manifest.get('threshold_far')}; "
                          f"{manifest.get('threshold_source', 'source not recorded')})" if manifest.get("threshold")
             else "none stored: run edgeface eval MODEL --save-threshold"),
            ("parameters, FLOPs", f"{manifest.get('params', 0):,}, {manifest.get('flops', 0) / 1e9:.3f} G")]
    if lfw:
        rows.append(("LFW View 2", f"{100 * lfw['accuracy']:.2f} % +- {100 * lfw['accuracy_se']:.2f}, AUC "
                                   f"{lfw['roc_auc']:.4f}, TAR at FAR 1e-3 {100 * lfw['tar_at_far']['0.001']:.1f} %"))
    rows.append(("made by", " -> ".join(step.get("step", "?") for step in manifest.get("chain", [])) or "?"))
    return rows
