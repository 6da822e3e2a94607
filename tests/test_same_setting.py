"""Strangers who share a camera (issue #40): ``eval --same-setting`` scores every pair of a one-setting folder at the
model's own threshold, beside LFW."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import DATA, LFW, assert_one_line_error, needs_shared, run_cli, small_pairs

pytestmark = needs_shared

ORL = DATA / "orl"


def test_eval_reports_far_and_tar_on_strangers_of_one_setting(tmp_path: Path):
    """ORL (40 people x 10 photos, one setting): every pair, and the same numbers recomputed from the API's own
    embeddings of the same photos."""
    import edgeface

    pairs = small_pairs(tmp_path / "pairs.txt")
    done = run_cli("eval", "default", "--lfw-dir", str(LFW), "--pairs", str(pairs), "--same-setting", str(ORL),
                   "--json")
    assert done.returncode == 0, done.stderr
    same = json.loads(done.stdout)["same_setting"]
    assert (same["people"], same["images"], same["genuine_pairs"], same["impostor_pairs"]) == (40, 400, 1800, 78000)
    fr = edgeface.load()
    paths = sorted(ORL.glob("s*/*.png"))
    vectors = np.stack([fr.embed(p) for p in paths])
    ids = np.array([p.parent.name for p in paths])
    scores = vectors @ vectors.T
    upper = np.triu(np.ones_like(scores, bool), 1)
    same_person = ids[:, None] == ids[None, :]
    far = float((scores[upper & ~same_person] >= fr.threshold).mean())
    tar = float((scores[upper & same_person] >= fr.threshold).mean())
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
    assert_one_line_error(run_cli(*base, "default", "single", "--same-setting", str(ORL)), "one model")
