"""Strangers who share a camera (issue #40): ``eval --same-setting`` scores every pair of a one-setting folder at the
model's own threshold, beside LFW."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, LFW, MEDIA, assert_one_line_error, needs_shared, run_cli, small_pairs

pytestmark = needs_shared

ORL = DATA / "orl"
RESULTS = Path(__file__).parents[1] / "benchmarks" / "results"


def test_eval_reports_far_and_tar_on_strangers_of_one_setting(tmp_path: Path):
    """ORL (40 people x 10 photos, one setting): every pair, and the same numbers recomputed from the API's own
    embeddings of the same photos (one-pass probes against flip-averaged templates, as recognize compares)."""
    import edgeface

    pairs = small_pairs(tmp_path / "pairs.txt")
    done = run_cli("eval", "default", "--lfw-dir", str(LFW), "--pairs", str(pairs), "--same-setting", str(ORL),
                   "--json")
    assert done.returncode == 0, done.stderr
    same = json.loads(done.stdout)["same_setting"]
    # the default's templates are flip-averaged: every ordered (probe, template) pair of two photos is compared
    assert (same["people"], same["images"], same["genuine_pairs"], same["impostor_pairs"]) == (40, 400, 3600, 156000)
    fr = edgeface.load()
    paths = sorted(ORL.glob("s*/*.png"))
    probes = np.stack([fr.embed(p) for p in paths])
    templates = np.stack([fr.embed(p, template=True) for p in paths])
    ids = np.array([p.parent.name for p in paths])
    scores = probes @ templates.T
    other = ~np.eye(len(paths), dtype=bool)
    same_person = ids[:, None] == ids[None, :]
    far = float((scores[other & ~same_person] >= fr.threshold).mean())
    tar = float((scores[other & same_person] >= fr.threshold).mean())
    assert abs(same["far_at_model_threshold"] - far) < 2e-4 and abs(same["tar_at_model_threshold"] - tar) < 2e-3
    assert same["model_threshold"] == fr.threshold
    # the threshold that holds FAR 1e-3 here sits above the stored one exactly when the stored one lets more through
    assert (same["threshold_at_far_1e-3"] > fr.threshold) == (far > 1e-3)


def test_same_setting_refuses_what_it_cannot_score(tmp_path: Path):
    pairs = small_pairs(tmp_path / "pairs.txt")
    lone = tmp_path / "lone" / "alice"
    lone.mkdir(parents=True)
    (lone / "a.png").write_bytes((ORL / "s1" / "1.png").read_bytes())
    base = ("eval", "--lfw-dir", str(LFW), "--pairs", str(pairs))
    assert_one_line_error(run_cli(*base, "--same-setting", str(tmp_path / "lone")), "at least two people")
    assert_one_line_error(run_cli(*base, "--same-setting", str(tmp_path / "nope")), "not found")
    assert_one_line_error(run_cli(*base, "default", "fast", "--same-setting", str(ORL)), "one model")


@pytest.mark.slow
def test_save_threshold_raised_until_it_holds_among_strangers_of_one_setting(tmp_path: Path):
    """`eval MODEL --save-threshold --same-setting DIR`: the LFW threshold is stored, then raised until strangers who
    share DIR's setting (20 ORL people, through every shared camera) are let through at FAR <= 1e-3 plain; the LFW
    threshold is kept in the manifest, placing again starts from it, and a plain --save-threshold undoes the raise."""
    import edgeface
    from edgeface.default_model import resolve_model
    from edgeface.manifest import load_manifest

    model = tmp_path / "small.tflite"
    shutil.copy(resolve_model("small"), model)
    people = tmp_path / "door"
    for k in range(1, 21):
        shutil.copytree(ORL / f"s{k}", people / f"s{k}")
    pairs = small_pairs(tmp_path / "pairs.txt", folds=10, per=100)
    base = ("eval", str(model), "--lfw-dir", str(LFW), "--pairs", str(pairs), "--save-threshold", "--json")
    plain = json.loads(run_cli(*base).stdout)
    lfw_threshold = load_manifest(model).threshold
    assert lfw_threshold == plain["saved_threshold"] and "same_setting" not in load_manifest(model).metrics
    for _ in range(2):  # placing twice starts from the LFW threshold both times
        done = run_cli(*base, "--same-setting", str(people))
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        manifest = load_manifest(model)
        placed = manifest.metrics["same_setting"]
        assert placed["lfw_threshold"] == lfw_threshold and placed["not_held"] == report["same_setting_placement"][
            "not_held"]
        assert manifest.threshold == report["saved_threshold"] == max(lfw_threshold, placed["threshold"])
        assert report["same_setting"]["model_threshold"] == manifest.threshold
        assert "raised to hold among strangers" in manifest.threshold_source or manifest.threshold == lfw_threshold
    # the promise, recomputed from the API's own embeddings of the plain photos: FAR <= 1e-3 among these strangers
    fr = edgeface.load(model)
    assert fr.threshold == manifest.threshold
    paths = sorted(people.glob("s*/*.png"))
    vectors = np.stack([fr.embed(p) for p in paths])
    ids = np.array([p.parent.name for p in paths])
    scores = vectors @ vectors.T
    upper = np.triu(np.ones_like(scores, bool), 1)
    impostors = scores[upper & (ids[:, None] != ids[None, :])]
    assert (impostors >= manifest.threshold).mean() <= 1e-3 + 1e-9
    assert (impostors >= placed["needed"]["plain"]).sum() <= int(1e-3 * len(impostors)) + 1
    # a plain LFW placement again: the raise is undone, not carried
    assert json.loads(run_cli(*base).stdout)["saved_threshold"] == lfw_threshold
    assert load_manifest(model).threshold == lfw_threshold and "same_setting" not in load_manifest(model).metrics


def test_placement_leaves_to_the_gates_a_camera_it_could_hold_only_by_naming_nobody():
    """``setting_threshold``: the plain camera's FAR always holds; a harsh camera whose strangers look as alike as
    the same person is held only as far as the plain camera's genuine matches allow (``MAX_TAR_LOSS``)."""
    from edgeface.evaluate.same_setting import MAX_TAR_LOSS, genuine_scores, setting_threshold

    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(60), 4)
    centres = rng.normal(size=(60, 32))

    def view(spread: float, shared: float) -> tuple[np.ndarray, None, np.ndarray]:
        v = shared * np.ones(32) + centres[ids] + spread * rng.normal(size=(len(ids), 32))
        return v / np.linalg.norm(v, axis=1, keepdims=True), None, ids

    plain, mild, harsh = view(0.3, 0.0), view(0.5, 0.3), view(0.3, 3.0)  # harsh: every face alike
    placed = setting_threshold({"plain": plain, "mild": mild})
    assert placed["not_held"] == [] and placed["threshold"] == max(placed["needed"].values())
    capped = setting_threshold({"plain": plain, "mild": mild, "harsh": harsh})
    assert capped["not_held"] == ["harsh"] and capped["needed"]["harsh"] > capped["threshold"] >= placed["threshold"]
    genuine = genuine_scores(plain[0], ids)
    kept = (genuine >= capped["threshold"]).mean() / (genuine >= capped["needed"]["plain"]).mean()
    assert kept >= 1 - MAX_TAR_LOSS - 1 / len(genuine)


def test_the_head_turn_limit_is_each_models_own(tmp_path: Path):
    """``gates.max_turn`` in a model's manifest is the limit enrolment and recognition use unless ``--max-turn`` is
    given; the shipped files carry the one benchmarks/turn_limit.py calibrated."""
    import edgeface
    from edgeface.default_model import resolve_model
    from edgeface.manifest import load_manifest, save_manifest
    from edgeface.recognize.config import PipelineConfig
    from edgeface.recognize.pipeline import Pipeline

    calibrated = json.loads((RESULTS / "turn_limit.json").read_text())["chosen"]
    for name in ("default", "fast", "small"):
        assert load_manifest(resolve_model(name)).gates["max_turn"] == calibrated[name]["max_turn"]
    assert Pipeline(PipelineConfig()).max_turn == calibrated["default"]["max_turn"]
    model = tmp_path / "small.tflite"
    shutil.copy(resolve_model("small"), model)
    manifest = load_manifest(model)
    manifest.gates = {**manifest.gates, "max_turn": 0.1}  # obama3.jpg's face measures about 0.2
    save_manifest(model, manifest)
    gallery, probe = tmp_path / "g.sqlite", MEDIA / "probes" / "obama3.jpg"
    enroll = ("enroll", "obama", str(probe), "--gallery", str(gallery), "--model", str(model), "--json")
    refused = run_cli(*enroll)
    assert refused.returncode != 0 and "turned away" in refused.stderr
    with edgeface.Gallery(gallery, model=str(model), max_turn=1.5) as people:  # the limit given wins
        people.enroll("obama", probe)
    recognize = ("recognize", "--source", str(probe), "--gallery", str(gallery), "--json")
    [face] = [json.loads(line) for line in run_cli(*recognize).stdout.splitlines()][:-1]
    assert face["reason"] == "turned away" and face["name"] is None and 0.1 < face["turn"] < 1.5
    [face] = [json.loads(line) for line in run_cli(*recognize, "--max-turn", "1.5").stdout.splitlines()][:-1]
    assert face["name"] == "obama" and face.get("reason") is None
