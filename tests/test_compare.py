"""compare and optimize: all three outputs on a tiny model, and the budget logic on a case with a known answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import LFW, needs_shared, prepared_orl, small_pairs

from edgeface.errors import EdgefaceError

tf_setup = pytest.importorskip("edgeface.training.tf_setup")


def rows(*spec):
    return [{"variant": n, "accuracy": a, "p50_ms": t, "size_bytes": s} for n, a, t, s in spec]


def test_select_respects_the_budget_and_target():
    from edgeface.training.compare import select

    table = rows(("float32", 0.950, 4.0, 4000), ("int8", 0.948, 1.5, 1000), ("struct+int8", 0.944, 0.9, 700),
                 ("tiny", 0.930, 0.5, 300))
    assert select(table, 0.3, "latency")["variant"] == "int8"  # 0.2 pp lost; struct loses 0.6
    assert select(table, 1.0, "latency")["variant"] == "struct+int8"
    assert select(table, 3.0, "size")["variant"] == "tiny"
    assert select(table, 0.0, "latency")["variant"] == "float32"
    with pytest.raises(EdgefaceError):
        select(table, 0.3, "energy")


def test_pareto_front():
    from edgeface.training.compare import pareto_front

    table = rows(("a", 0.95, 4.0, 1), ("b", 0.94, 2.0, 1), ("c", 0.93, 3.0, 1), ("d", 0.96, 5.0, 1))
    assert sorted(r["variant"] for r in pareto_front(table)) == ["a", "b", "d"]


@needs_shared
@pytest.mark.slow
def test_compare_writes_report_json_markdown_and_plot(tmp_path, monkeypatch):
    from edgeface.manifest import Manifest
    from edgeface.training.compare import compare
    from edgeface.training.models import build_model
    from edgeface.training.models.registry import INPUT_SPEC
    from edgeface.training.train.keras_io import save_keras

    faces = prepared_orl(tmp_path, people=5)
    model = build_model("mobilefacenet", width=0.25, embedding_size=32)
    path = save_keras(model, tmp_path / "m.keras", Manifest(input=INPUT_SPEC, embedding_size=32))
    pairs = small_pairs(tmp_path / "pairs.txt", folds=2, per=3)
    out = tmp_path / "cmp"
    result = compare(path, ["quantize", "structured"], [faces], out, LFW, pairs, epochs=1, faces_limit=48)
    names = [r["variant"] for r in result["results"]]
    assert names[0] == "float32" and "int8" in names and any("structured" in n for n in names)
    report = json.loads((out / "report.json").read_text())
    assert len(report["results"]) == len(names) and report["pareto_front"]
    assert "| float32 |" in (out / "report.md").read_text()
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # resumable: a second run rebuilds nothing (files untouched)
    stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tflite")}
    compare(path, ["quantize", "structured"], [faces], out, LFW, pairs, epochs=1, faces_limit=48)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tflite")} == stamp
    # a technique that fails becomes a row with its error; the others are still scored, timed and plotted
    import edgeface.training.compare as compare_module
    from edgeface.errors import EdgefaceError

    def broken() -> None:
        raise EdgefaceError("no Dense or Conv2D layer would get smaller at that rank/energy")

    planned = compare_module.plan_variants
    monkeypatch.setattr(compare_module, "plan_variants", lambda *a, **k: [
        *planned(*a, **k), compare_module.Variant("low-rank r1", "lowrank", broken, "float32")])
    result = compare(path, ["quantize", "structured"], [faces], out, LFW, pairs, epochs=1, faces_limit=48)
    failed = [r for r in result["results"] if "error" in r]
    assert [(r["variant"], r["error"]) for r in failed] == [
        ("low-rank r1", "no Dense or Conv2D layer would get smaller at that rank/energy")]
    assert all("p50_ms" in r for r in result["results"] if "error" not in r)
    assert "| low-rank r1 | failed: no Dense" in (out / "report.md").read_text()


@needs_shared
@pytest.mark.slow
def test_optimize_writes_the_fastest_variant_within_the_budget_and_reuses_its_variants(tmp_path, monkeypatch):
    """optimize exports, scores and times its variants, and writes the fastest one the budget allows to --out (file
    and manifest); a second run with a tighter budget reuses the variants it built and picks a variant that loses
    nothing against float32. Its plan is cut to the post-training variants (the training ones are the compare
    test's): four real files, scored and timed, in a fraction of the time."""
    import edgeface.training.compare as compare_module
    from edgeface.manifest import Manifest, load_manifest
    from edgeface.training.compare import optimize
    from edgeface.training.models import build_model
    from edgeface.training.models.registry import INPUT_SPEC
    from edgeface.training.train.keras_io import save_keras

    faces = prepared_orl(tmp_path, people=5)
    model = build_model("mobilefacenet", width=0.25, embedding_size=32)
    path = save_keras(model, tmp_path / "m.keras", Manifest(input=INPUT_SPEC, embedding_size=32))
    pairs = small_pairs(tmp_path / "pairs.txt", folds=2, per=3)
    out, work = tmp_path / "best.tflite", tmp_path / "variants"
    planned = compare_module.plan_variants
    monkeypatch.setattr(compare_module, "plan_variants", lambda model, manifest, faces, techniques, epochs, **_:
                        planned(model, manifest, faces, [t for t in techniques if t == "quantize"], epochs))
    result = optimize(path, 100.0, "latency", [faces], out, LFW, pairs, epochs=0.5, faces_limit=32, work=work)
    scored = [r for r in result["evidence"] if "error" not in r]
    assert [r["variant"] for r in scored] == ["float32", "float16", "dynamic", "int8"]
    assert result["chosen"] == min(scored, key=lambda r: (r["p50_ms"], -r["accuracy"]))["variant"]
    chosen = next(r for r in scored if r["variant"] == result["chosen"])
    assert out.read_bytes() == Path(chosen["file"]).read_bytes()
    assert load_manifest(out) == load_manifest(chosen["file"])
    stamp = {p.name: p.stat().st_mtime_ns for p in work.glob("*.tflite")}
    strict = optimize(path, 0.0, "latency", [faces], out, LFW, pairs, epochs=0.5, faces_limit=32, work=work)
    picked = next(r for r in strict["evidence"] if r["variant"] == strict["chosen"])
    assert picked["accuracy"] >= strict["evidence"][0]["accuracy"]
    assert {p.name: p.stat().st_mtime_ns for p in work.glob("*.tflite")} == stamp
