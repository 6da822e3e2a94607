"""Camera conditions: the same damage for training views and for evaluation, seeded per image, without TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import LFW, assert_one_line_error, needs_shared, prepared_orl, run_cli, small_pairs

from edgeface.vision.image import read_image

pytestmark = needs_shared
FACE = LFW / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"


def test_each_condition_does_what_its_name_says():
    from edgeface.vision.conditions import condition_transform, eye_distance, rescale
    from edgeface.vision.detect import FaceFinder

    image = read_image(FACE)
    grey = condition_transform("grey")(image, "k")
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    lit = condition_transform("relight")(image, str(FACE)).astype(float)
    ratio = lit.mean(axis=(0, 2)) / np.maximum(image.astype(float).mean(axis=(0, 2)), 1)
    dark, bright = sorted([ratio[:60].mean(), ratio[-60:].mean()])
    assert dark < 0.35 and bright > 1.05, (dark, bright)  # one side in shadow, the other lit
    # seeded by the image's key: the same side for every model, not always the same side for every image
    again = condition_transform("relight")(image, str(FACE))
    assert np.array_equal(again, lit.astype(np.uint8))
    sides = {np.sign(condition_transform("relight")(image, f"k{i}")[:, :60].mean() - 100) for i in range(12)}
    assert sides == {-1.0, 1.0}
    jpeg = condition_transform("jpeg20")(image, "k")
    assert jpeg.shape == image.shape and 2 < np.abs(jpeg.astype(int) - image).mean() < 20
    # 32 px between the eyes, whatever the photo's framing: the same as rescaling by the measured distance
    eyes = eye_distance(FaceFinder().find(image)[0].keypoints)
    assert eyes > 40
    small = condition_transform("lowres32")(image, "k")
    assert np.array_equal(small, rescale(image, 32 / eyes))
    with pytest.raises(Exception, match="unknown condition"):
        condition_transform("fog")


def test_views_are_seeded_resumable_and_a_prepared_folder(tmp_path: Path):
    from edgeface.data.prepare import read_manifest, record_face
    from edgeface.data.views import make_views
    from edgeface.vision.align import align_face

    faces = prepared_orl(tmp_path / "orl", people=2)
    first = make_views(faces, tmp_path / "views", per_face=2, workers=1)
    n = len([r for r in read_manifest(faces) if r["status"] == "ok"])
    assert first["written"] == 2 * n and sum(first["conditions_drawn"].values()) >= 2 * n
    again = make_views(faces, tmp_path / "views", per_face=2, workers=2)
    assert again["written"] == 0 and again["skipped_already_made"] == 2 * n
    twin = make_views(faces, tmp_path / "twin", per_face=1, workers=2)
    records = read_manifest(tmp_path / "views")
    assert len(records) == 2 * n and all(r["status"] == "ok" and r["identity"] for r in records)
    for rec in records[:6]:
        crop = read_image(tmp_path / "views" / rec["file"])
        # the crop is the damaged source aligned with the clean landmarks: what the teacher is shown (both stored
        # as JPEG 95, hence the small tolerance), and not the clean crop
        shown = align_face(read_image(rec["source"]), record_face(rec)).astype(int)
        assert np.abs(crop - shown).mean() < 2.5
        assert np.abs(crop - read_image(faces / rec["of"]).astype(int)).mean() > 4
    one = records[0]
    assert (tmp_path / "twin" / one["file"]).read_bytes() == (tmp_path / "views" / one["file"]).read_bytes()
    assert twin["written"] == n
    with pytest.raises(Exception, match="new folder"):
        make_views(faces, faces)


def test_harsh_views_draw_each_harsh_light_from_a_family_around_the_evaluation_condition(tmp_path: Path):
    """``data views --kind harsh``: a cast shadow, a dim room at the gain limit, a night camera, each with its own
    parameters per view (the evaluation's are one point inside), seeded by the view's name."""
    from edgeface.vision.conditions import random_harsh, rng_for
    from edgeface.vision.detect import FaceFinder

    image = read_image(FACE)
    face = FaceFinder().find(image)[0]
    x0, y0, x1, y1 = (int(v) for v in face.box)
    clean = image[y0:y1, x0:x1].astype(float)
    drawn: dict[str, list[np.ndarray]] = {}
    for i in range(24):
        view, steps = random_harsh(image, face.box, rng_for(f"view{i}"))
        assert view.shape == image.shape and len(steps) == 1
        drawn.setdefault(steps[0], []).append(view)
        again, _ = random_harsh(image, face.box, rng_for(f"view{i}"))
        assert np.array_equal(view, again)
    assert set(drawn) == {"shadow", "dark", "nir"}
    for view in drawn["nir"]:  # one grey channel
        assert np.abs(view[..., 0].astype(int) - view[..., 2]).max() <= 12  # JPEG's chroma rounding only
    for view in drawn["shadow"]:  # one part of the face in deep shadow, another still lit
        ratio = (view[y0:y1, x0:x1].astype(float).mean(axis=2) + 1) / (clean.mean(axis=2) + 1)
        assert np.percentile(ratio, 5) < 0.4 and np.percentile(ratio, 95) > 0.9
    # sensor noise: the dim room's views differ from the clean face pixel to pixel far more than a smooth gain would
    noise = [np.abs(np.diff(v[y0:y1, x0:x1].astype(float), axis=1)).mean() for v in drawn["dark"]]
    assert min(noise) > 1.3 * np.abs(np.diff(clean, axis=1)).mean(), noise
    faces = prepared_orl(tmp_path / "orl", people=1)
    assert_one_line_error(run_cli("data", "views", str(faces), str(tmp_path / "v"), "--kind", "fog"), "fog")
    assert_one_line_error(run_cli("data", "views", str(faces), str(tmp_path / "v"), "--workers", "100000"),
                          "--workers must be a whole number from 1 to")


def test_eval_under_a_condition_scores_other_pixels_and_reports_the_threshold(tmp_path: Path):
    pairs = small_pairs(tmp_path / "pairs.txt", folds=2, per=4)
    reports = {}
    for condition in ("plain", "grey"):
        result = run_cli("eval", "--lfw-dir", str(LFW), "--pairs", str(pairs), "--condition", condition, "--json")
        assert result.returncode == 0, result.stderr
        reports[condition] = json.loads(result.stdout)
    plain, grey = reports["plain"], reports["grey"]
    assert plain["condition"] == "plain" and grey["condition"] == "grey"
    assert plain["threshold"] != grey["threshold"]  # other pixels, other scores: never the plain cache
    for report in reports.values():
        assert 0 <= report["far_at_model_threshold"] <= 1 and report["model_threshold"] > 0
    table = run_cli("eval", "--lfw-dir", str(LFW), "--pairs", str(pairs), "--condition", "grey")
    assert "LFW View 2 (grey)" in table.stdout and "model's threshold" in table.stdout
    assert_one_line_error(run_cli("eval", "--lfw-dir", str(LFW), "--pairs", str(pairs), "--hold-conditions"),
                          "--save-threshold")
    assert_one_line_error(run_cli("eval", "--lfw-dir", str(LFW), "--pairs", str(pairs), "--condition", "fog"),
                          "fog")


def test_eval_of_several_models_and_conditions_is_one_row_each_and_pairs_against_a_reference(tmp_path: Path):
    """`eval default fast --condition plain,grey --paired default`: four rows, each what a single eval gives,
    the fast model's per-fold change against the default under the same condition (and none for the default)."""
    pairs = small_pairs(tmp_path / "pairs.txt", folds=2, per=4)
    common = ("--lfw-dir", str(LFW), "--pairs", str(pairs))
    result = run_cli("eval", "default", "fast", *common, "--condition", "plain,grey", "--paired", "default",
                     "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["model_arg"], r["condition"]) for r in rows] == [
        ("default", "plain"), ("default", "grey"), ("fast", "plain"), ("fast", "grey")]
    alone = json.loads(run_cli("eval", "fast", *common, "--condition", "grey", "--json").stdout)
    assert rows[3]["accuracy"] == alone["accuracy"] and rows[3]["fold_accuracy"] == alone["fold_accuracy"]
    assert "paired" not in rows[0]
    change = 100 * (np.array(rows[3]["fold_accuracy"]) - np.array(rows[1]["fold_accuracy"]))
    assert rows[3]["paired"]["change_pp"] == pytest.approx(change.mean())
    assert rows[3]["paired"]["folds_worse"] == int((change < 0).sum()) and rows[3]["paired"]["folds"] == 2
    table = run_cli("eval", "default", "fast", *common, "--paired", "fast")
    assert table.returncode == 0 and "paired change" in table.stdout and "worse" in table.stdout
    assert_one_line_error(run_cli("eval", "default", "fast", *common, "--save-threshold"), "one model")
    assert_one_line_error(run_cli("eval", *common, "--condition", "plain,plain"), "twice")
    assert_one_line_error(run_cli("eval", *common, "--detector", "yunet,haar"), "haar")


def synthetic_report(rng, noise: float, shared: float = 0.0, people: int = 200,
                     per: int = 3) -> tuple[dict, np.ndarray, np.ndarray]:
    """An eval-like report of unit embeddings of ``people`` x ``per`` images: identity centre + ``noise``, plus a
    ``shared`` component every image has (a condition that makes strangers look alike)."""
    from edgeface.evaluate.metrics import all_pairs_thresholds

    ids = np.repeat(np.arange(people), per)
    centres = rng.normal(size=(people, 32))
    emb = centres[ids] + noise * rng.normal(size=(len(ids), 32)) + shared * np.ones(32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return {"all_pairs": all_pairs_thresholds(emb, ids, block=97)}, emb, ids


def test_all_pairs_thresholds_admit_exactly_the_allowed_impostors():
    rng = np.random.default_rng(0)
    report, emb, ids = synthetic_report(rng, 1.2)
    s = emb @ emb.T
    iu = np.triu_indices(len(ids), 1)
    impostor = s[iu][ids[iu[0]] != ids[iu[1]]]
    genuine = s[iu][ids[iu[0]] == ids[iu[1]]]
    assert report["all_pairs"]["impostor_pairs"] == len(impostor) and report["all_pairs"]["genuine_pairs"] == 600
    for far, t in report["all_pairs"]["threshold_at_far"].items():
        admitted = int((impostor >= t).sum())  # recognize accepts score >= threshold
        assert admitted <= int(float(far) * len(impostor)) and (impostor >= np.nextafter(t, -1) - 1e-6).sum() > admitted
        assert report["all_pairs"]["tar_at_far"][far] == pytest.approx(float(np.mean(genuine >= t)))


def test_all_pairs_with_templates_count_every_ordered_probe_template_pair():
    """Probes against flip-averaged templates (``templates=``): (i, j) and (j, i) are different comparisons, each a
    trial, and the threshold admits no more of them than the FAR allows; a face is never compared with itself."""
    from edgeface.evaluate.metrics import all_pairs_thresholds

    rng = np.random.default_rng(2)
    _, probes, ids = synthetic_report(rng, 1.2, people=60)
    templates = probes + 0.3 * rng.normal(size=probes.shape)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    out = all_pairs_thresholds(probes, ids, block=37, templates=templates, at=0.5)
    s = probes @ templates.T
    other = ~np.eye(len(ids), dtype=bool)
    impostor, genuine = s[other & (ids[:, None] != ids[None, :])], s[other & (ids[:, None] == ids[None, :])]
    assert out["impostor_pairs"] == len(impostor) == 2 * (180 * 179 // 2 - 60 * 3)
    assert out["genuine_pairs"] == len(genuine) == 60 * 6
    for far, t in out["threshold_at_far"].items():
        assert int((impostor >= t).sum()) <= int(float(far) * len(impostor))
    assert out["far_at_model_threshold"] == pytest.approx(float(np.mean(impostor >= 0.5)))
    assert out["tar_at_model_threshold"] == pytest.approx(float(np.mean(genuine >= 0.5)))


def test_robust_threshold_holds_plain_far_and_the_looser_condition_far():
    from edgeface.evaluate.lfw import robust_threshold

    rng = np.random.default_rng(1)
    plain, grey = synthetic_report(rng, 0.8)[0], synthetic_report(rng, 0.8, shared=0.5)[0]  # grey: strangers alike
    t = robust_threshold({"plain": plain, "grey": grey})
    assert t == grey["all_pairs"]["threshold_at_far"]["0.003"] > plain["all_pairs"]["threshold_at_far"]["0.001"]
    # where the condition is harmless, the plain threshold stands
    assert robust_threshold({"plain": plain, "grey": plain}) == plain["all_pairs"]["threshold_at_far"]["0.001"]
