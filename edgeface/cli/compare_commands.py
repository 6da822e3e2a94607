"""compare and optimize: every compression technique built, exported, scored and timed (TensorFlow inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgeface.cli.base import app
from edgeface.cli.options import (
    FineEpochs,
    FineFaces,
    Json,
    KerasIn,
    LFWDir,
    PairsFile,
    Target,
    finite,
    option_group,
)

# what compare and optimize both build from and score on, declared once, received as one ``study: dict``
STUDY_OPTIONS: dict[str, tuple[Any, Any]] = {
    "model": (KerasIn, ...),
    "data": (Annotated[list[Path], typer.Option("--data", help="prepared faces: fine-tuning and int8 calibration")],
             ...),
    "lfw_dir": (LFWDir, ...), "pairs": (PairsFile, ...), "epochs": (FineEpochs, 2.0), "faces": (FineFaces, 4000),
}
study_options = option_group(STUDY_OPTIONS, tuple(STUDY_OPTIONS), "study", dict)


@app.command("compare", rich_help_panel="3. evaluate & benchmark")
@study_options
def compare_command(
    study: dict,
    techniques: Annotated[str, typer.Option(help="comma-separated: quantize,prune,structured,lowrank,qat,cluster,"
                                                 "distill")] = "quantize,prune,structured,lowrank,qat,cluster",
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for variants, report.md/json, pareto.png")] = Path(
        "runs/compare"),
    student: Annotated[Optional[str], typer.Option(help="distill: ARCH[:WIDTH], e.g. mobilefacenet:0.5")] = None,
    json_out: Json = False,
) -> None:
    """Build, export, score (LFW, from the .tflite) and time every technique; report + Pareto plot. Resumable."""
    from edgeface.tables import print_json, print_table
    from edgeface.training.compare import compare

    model = study["model"]
    result = compare(model, [t.strip() for t in techniques.split(",") if t.strip()], study["data"], out,
                     study["lfw_dir"], study["pairs"], study["epochs"], study["faces"], student)
    if json_out:
        print_json(result)
        return
    print_table(f"edgeface compare {model.name} (outputs in {out})",
                ["variant", "KB", "gzip KB", "p50 ms", "speed-up", "LFW %", "delta pp", "TAR@1e-3 %"],
                [(r["variant"], round(r["size_bytes"] / 1024), round(r["gzip_bytes"] / 1024), round(r["p50_ms"], 3),
                  f"{r['speedup_vs_float32']:.2f}x", f"{100 * r['accuracy']:.2f} +- {100 * r['accuracy_se']:.2f}",
                  f"{r['delta_pp']:+.2f}", f"{100 * r['tar_at_far_1e-3']:.2f}") for r in result["results"]])


@app.command("optimize", rich_help_panel="3. evaluate & benchmark")
@study_options
def optimize_command(
    study: dict,
    out: Annotated[Path, typer.Option("--out", "-o", help="the chosen .tflite (+ manifest)")] = Path(
        "optimized.tflite"),
    max_drop: Annotated[float, typer.Option(help="largest LFW accuracy loss allowed, percentage points",
        callback=finite)] = 0.3,
    target: Annotated[Target, typer.Option(help="what to minimise within the accuracy budget")] = Target.latency,
    work: Annotated[Optional[Path], typer.Option(help="variants folder (a compare --out folder is reused)")] = None,
    json_out: Json = False,
) -> None:
    """The fastest (or smallest) exported variant whose LFW accuracy stays within --max-drop of float32."""
    target = target.value
    from edgeface.tables import print_json, print_table
    from edgeface.training.compare import optimize

    result = optimize(study["model"], max_drop, target, study["data"], out, study["lfw_dir"], study["pairs"],
                      study["epochs"], study["faces"], work)
    if json_out:
        print_json(result)
        return
    print_table(f"optimize ({target}, max drop {max_drop} pp): chose {result['chosen']} -> {out}",
                ["variant", "p50 ms", "KB", "LFW %", "delta pp", "within budget"],
                [(r["variant"], round(r["p50_ms"], 3), round(r["size_bytes"] / 1024),
                  f"{100 * r['accuracy']:.2f}", f"{r['delta_pp']:+.2f}", "yes" if -r["delta_pp"] <= max_drop else "no")
                 for r in result["evidence"]])
