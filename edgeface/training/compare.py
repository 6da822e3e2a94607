"""``edgeface compare`` and ``edgeface optimize``: build compressed variants of one model, export each, score each
on LFW View 2 from its .tflite and time each on the light runtime in the same run; then a table, a JSON report
and a Pareto plot (accuracy vs latency), or the fastest/smallest variant within an accuracy budget.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeface.errors import EdgefaceError
from edgeface.files import atomic_write, write_json
from edgeface.progress import stderr

TECHNIQUES = ("quantize", "prune", "structured", "lowrank", "qat", "cluster", "distill")


@dataclass
class Variant:
    name: str
    technique: str
    build: Callable  # () -> keras.Model (memoised by the planner)
    quantize: str  # export mode
    strength: float = 0.0  # how aggressive within its family (optimize tries weaker first)

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-").replace("--", "-")


def plan_variants(model, manifest, faces, techniques: list[str], epochs: float,
                  structured_ratios: tuple[float, ...] = (0.55,), student: str | None = None) -> list[Variant]:
    """The variants compare builds for ``techniques`` (float32 is always first: the reference)."""
    from edgeface.training.compress.cluster import cluster
    from edgeface.training.compress.lowrank import lowrank
    from edgeface.training.compress.prune import magnitude_prune, structured_prune
    from edgeface.training.compress.quantize import quantization_aware

    check_techniques(techniques)
    cache: dict[str, object] = {}

    def memo(key: str, fn: Callable) -> Callable:
        def build():
            if key not in cache:
                cache[key] = fn()
            return cache[key]
        return build

    base = memo("base", lambda: model)
    out = [Variant("float32", "baseline", base, "float32")]
    if "quantize" in techniques:
        out += [Variant("float16", "quantize", base, "float16"), Variant("dynamic", "quantize", base, "dynamic"),
                Variant("int8", "quantize", base, "int8")]
    if "prune" in techniques:
        for s in (0.5, 0.75):
            build = memo(f"mag{s}", lambda s=s: magnitude_prune(model, s, faces, epochs)[0])
            out.append(Variant(f"magnitude {int(100 * s)} % + int8", "prune", build, "int8", s))
    if "structured" in techniques:
        for r in structured_ratios:
            build = memo(f"struct{r}", lambda r=r: structured_prune(model, r, faces, epochs)[0])
            out += [Variant(f"structured {int(100 * r)} % channels + float32", "structured", build, "float32", r),
                    Variant(f"structured {int(100 * r)} % channels + int8", "structured", build, "int8", r)]
    if "lowrank" in techniques:
        build = memo("lowrank", lambda: lowrank(model, faces, energy=0.9, epochs=epochs)[0])
        out.append(Variant("low-rank 0.9 energy + int8", "lowrank", build, "int8"))
    if "qat" in techniques:
        out.append(Variant("QAT int8", "qat", memo("qat", lambda: quantization_aware(model, faces, "qat", epochs)),
                           "int8"))
    if "cluster" in techniques:
        out.append(Variant("clustered 16 + int8", "cluster", memo("cluster", lambda: cluster(model, 16, faces,
                                                                                             epochs=epochs)), "int8"))
    if "distill" in techniques:
        out.append(Variant(f"distilled {student or 'mobilefacenet x0.5'} + int8", "distill",
                           memo("distill", lambda: distill_student(model, faces, student, epochs)), "int8"))
    return out


def distill_student(teacher, faces, arch: str | None, epochs: float):
    """A thinner student of the same family, trained on the teacher's embeddings of the face set."""
    from edgeface.training.compress.finetune import finetune
    from edgeface.training.models.registry import build_model

    name, _, width = (arch or "mobilefacenet:0.5").partition(":")
    student = build_model(name, int(teacher.inputs[0].shape[1]), int(teacher.outputs[0].shape[-1]),
                          float(width) if width else None)
    finetune(student, faces, max(epochs, 1) * 5, lr=2e-3)
    return student


def evaluate_variants(variants: list[Variant], manifest, out_dir: Path, calibration, lfw_dir: Path,
                      pairs: Path, threads: int = 1) -> list[dict]:
    """Export every variant (skipping finished ones), score it on LFW and time it; one row per variant."""
    from edgeface.evaluate.lfw import evaluate_lfw
    from edgeface.runtime.bench import bench
    from edgeface.training.export import export
    from edgeface.vision.embed import TFLiteEmbedder

    rows = []
    for v in variants:
        path = out_dir / f"{v.slug}.tflite"
        try:
            if not (path.exists() and path.with_suffix(".json").exists()):  # resumable
                stderr.print(f"[bold]building[/] {v.name}")
                export(v.build(), path, v.quantize, calibration, "int8", manifest,
                       {"variant": v.name, "technique": v.technique})
            report = evaluate_lfw(TFLiteEmbedder(path, threads=threads), lfw_dir, pairs)
        except Exception as exc:  # one technique that fails must not cost the others' results: a row says why
            if not rows:
                raise
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            stderr.print(f"[bold red]failed[/] {v.name}: {message}")
            rows.append({"variant": v.name, "technique": v.technique, "strength": v.strength, "error": message})
            continue
        meta = json.loads(path.with_suffix(".json").read_text())
        rows.append({"variant": v.name, "technique": v.technique, "strength": v.strength, "file": str(path),
                     "quantize": v.quantize, "params": meta.get("params"), "accuracy": report["accuracy"],
                     "accuracy_se": report["accuracy_se"], "roc_auc": report["roc_auc"],
                     "tar_at_far_1e-3": report["tar_at_far"]["0.001"]})
    scored = [r for r in rows if "error" not in r]
    timing = {r["model"]: r for r in bench([r["file"] for r in scored], [threads], runs=200, warmup=20)}
    for r in scored:
        t = timing[r["file"]]
        r.update({"p50_ms": t["p50_ms"], "size_bytes": t["size_bytes"], "gzip_bytes": t["gzip_bytes"],
                  "flops": t["flops"]})
    base = scored[0]
    for r in scored:
        r["speedup_vs_float32"] = base["p50_ms"] / r["p50_ms"]
        r["delta_pp"] = 100 * (r["accuracy"] - base["accuracy"])
        r["size_ratio"] = r["size_bytes"] / base["size_bytes"]
        r["gzip_ratio"] = r["gzip_bytes"] / base["gzip_bytes"]
    return rows


def pareto_front(rows: list[dict]) -> list[dict]:
    """Rows no other row beats on both latency (lower) and accuracy (higher)."""
    return [r for r in rows if not any(o is not r and o["p50_ms"] <= r["p50_ms"] and o["accuracy"] >= r["accuracy"]
                                       and (o["p50_ms"] < r["p50_ms"] or o["accuracy"] > r["accuracy"]) for o in rows)]


def markdown(rows: list[dict]) -> str:
    head = ("| variant | size KB | gzip KB | params | MFLOPs | p50 ms | speed-up | LFW View 2 % | delta pp | "
            "TAR@FAR1e-3 % |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    return head + "".join(
        f"| {r['variant']} | failed: {r['error']} |||||||||\n" if "error" in r else
        f"| {r['variant']} | {r['size_bytes'] / 1024:.0f} | {r['gzip_bytes'] / 1024:.0f} | {r['params'] or 0:,} | "
        f"{r['flops'] / 1e6:.0f} | {r['p50_ms']:.3f} | {r['speedup_vs_float32']:.2f}x | "
        f"{100 * r['accuracy']:.2f} +- {100 * r['accuracy_se']:.2f} | {r['delta_pp']:+.2f} | "
        f"{100 * r['tar_at_far_1e-3']:.2f} |\n" for r in rows)


def place_labels(ax, points: list[tuple[float, float, str]], fontsize: int = 7) -> None:
    """Label every point without two labels overlapping: each label is pushed up or down in 9-point steps, in
    screen space, until its box is clear of every label already placed."""
    ax.figure.canvas.draw()  # fix the limits so data -> pixel transforms are final
    scale = ax.figure.dpi / 72
    placed: list[tuple[float, float, float, float]] = []
    for x, y, text in sorted(points, key=lambda p: (-p[1], p[0])):
        px, py = ax.transData.transform((x, y))
        w, h = 0.6 * fontsize * len(text) * scale, 1.3 * fontsize * scale
        for step in [0, -1, 1, -2, 2, -3, 3, -4, 4, -5, 5, -6, 6]:
            dy = 3 + 9 * step
            box = (px + 4 * scale, py + dy * scale, w, h)
            if not any(box[0] < b[0] + b[2] and b[0] < box[0] + box[2] and box[1] < b[1] + b[3]
                       and b[1] < box[1] + box[3] for b in placed):
                break
        placed.append(box)
        ax.annotate(text, (x, y), fontsize=fontsize, xytext=(4, dy), textcoords="offset points",
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "grey"} if step else None)


def pareto_plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    biggest = max(r["size_bytes"] for r in rows)
    for r in rows:
        ax.errorbar(r["p50_ms"], 100 * r["accuracy"], yerr=100 * r.get("accuracy_se", 0.0), fmt="none",
                    ecolor="grey", elinewidth=1, capsize=2)
        ax.scatter(r["p50_ms"], 100 * r["accuracy"], s=40 + 400 * r["size_bytes"] / biggest, alpha=0.6)
    place_labels(ax, [(r["p50_ms"], 100 * r["accuracy"], r["variant"]) for r in rows])
    front = sorted(pareto_front(rows), key=lambda r: r["p50_ms"])
    ax.plot([r["p50_ms"] for r in front], [100 * r["accuracy"] for r in front], "k--", lw=1, label="Pareto front")
    ax.set_xlabel("latency p50, ms (1 thread)")
    ax.set_ylabel("LFW View 2 accuracy, % (exported .tflite)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)


def write_reports(rows: list[dict], out_dir: Path, title: str) -> dict:
    scored = [r for r in rows if "error" not in r]
    write_json(out_dir / "report.json", {"title": title, "results": rows,
                                         "pareto_front": [r["variant"] for r in pareto_front(scored)]})
    with atomic_write(out_dir / "report.md", "w") as handle:
        handle.write(f"# {title}\n\n{markdown(rows)}")
    pareto_plot(scored, out_dir / "pareto.png", title)
    return {"json": str(out_dir / "report.json"), "markdown": str(out_dir / "report.md"),
            "plot": str(out_dir / "pareto.png")}


def select(rows: list[dict], max_drop_pp: float, target: str = "latency") -> dict | None:
    """The fastest (or smallest) row whose accuracy is within ``max_drop_pp`` of the first (float32) row."""
    if target not in ("latency", "size"):
        raise EdgefaceError(f"--target must be latency or size, got {target!r}")
    base = rows[0]["accuracy"]
    ok = [r for r in rows if "error" not in r and 100 * (base - r["accuracy"]) <= max_drop_pp]
    key = "p50_ms" if target == "latency" else "size_bytes"
    return min(ok, key=lambda r: (r[key], -r["accuracy"])) if ok else None


def prepare_inputs(model_path: Path, data: list[Path], faces_limit: int):
    from edgeface.training.compress.io import face_set, load_model
    from edgeface.training.export import calibration_faces

    model, manifest = load_model(model_path)
    if not data:
        raise EdgefaceError("compare/optimize need --data DIR (prepared faces) for fine-tuning and calibration")
    return model, manifest, face_set(model, manifest, data, faces_limit), calibration_faces(data, 300)


def check_techniques(techniques: list[str]) -> None:
    """Refuse a misspelt technique before minutes of building and scoring variants, not after."""
    unknown = set(techniques) - set(TECHNIQUES)
    if unknown or not techniques:
        raise EdgefaceError(f"unknown technique(s) {', '.join(sorted(unknown)) or '(none given)'}; "
                            f"choose from {', '.join(TECHNIQUES)}")


def compare(model_path: Path, techniques: list[str], data: list[Path], out_dir: Path, lfw_dir: Path, pairs: Path,
            epochs: float = 2.0, faces_limit: int = 4000, student: str | None = None) -> dict:
    check_techniques(techniques)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, manifest, faces, calibration = prepare_inputs(model_path, data, faces_limit)
    variants = plan_variants(model, manifest, faces, techniques, epochs, student=student)
    rows = evaluate_variants(variants, manifest, out_dir, calibration, lfw_dir, pairs)
    return {"results": rows, "outputs": write_reports(rows, out_dir, f"edgeface compare: {model_path.name}")}


def optimize(model_path: Path, max_drop_pp: float, target: str, data: list[Path], out: Path, lfw_dir: Path,
             pairs: Path, epochs: float = 2.0, faces_limit: int = 4000, work: Path | None = None) -> dict:
    """Try variants in order of expected gain for ``target``; return the best one within the accuracy budget.

    ``work`` holds the variants; pointing it at a ``compare`` output folder reuses the variants built there."""
    if not (math.isfinite(max_drop_pp) and 0 <= max_drop_pp <= 100):
        raise EdgefaceError(f"--max-drop must be 0 to 100 percentage points, got {max_drop_pp}")
    work = work or out.parent / f".{out.stem}-variants"
    work.mkdir(parents=True, exist_ok=True)
    model, manifest, faces, calibration = prepare_inputs(model_path, data, faces_limit)
    if target == "latency":
        techniques, ratios = ["quantize", "structured", "qat"], (0.3, 0.55, 0.7)
    else:
        techniques, ratios = ["quantize", "prune", "cluster"], ()
    variants = plan_variants(model, manifest, faces, techniques, epochs, structured_ratios=ratios)
    rows = evaluate_variants(variants, manifest, work, calibration, lfw_dir, pairs)
    best = select(rows, max_drop_pp, target)
    if best is None:
        raise EdgefaceError(f"no variant stays within {max_drop_pp} pp of float32 on LFW")
    for src, dst in ((Path(best["file"]), out), (Path(best["file"]).with_suffix(".json"), out.with_suffix(".json"))):
        with atomic_write(dst) as handle:
            handle.write(src.read_bytes())
    return {"chosen": best["variant"], "model": str(out), "max_drop_pp": max_drop_pp, "target": target,
            "evidence": rows}
