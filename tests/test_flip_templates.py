"""Flip at single cost (issue #40): the default averages each enrolled face with its mirror (``templates: flip`` in its
manifest) and runs one pass on every probe; its threshold is placed on that mix, and galleries made otherwise are
moved by ``gallery upgrade``."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
from conftest import LFW, MEDIA, assert_one_line_error, needs_shared, run_cli, small_pairs

PHOTO = MEDIA / "probes" / "obama3.jpg"


def one_pass_copy(tmp_path: Path, name: str = "default") -> Path:
    """The shipped file with ``templates: single`` in its manifest: the same network, templates made like probes."""
    from edgeface.default_model import resolve_model
    from edgeface.manifest import load_manifest, save_manifest

    model = tmp_path / f"{name}-one-pass.tflite"
    shutil.copy(resolve_model(name), model)
    manifest = load_manifest(model)
    manifest.templates = "single"
    save_manifest(model, manifest)
    return model


def stored_embeddings(gallery: Path) -> np.ndarray:
    with sqlite3.connect(gallery) as db:
        return np.stack([np.frombuffer(row[0], np.float32) for row in
                         db.execute("SELECT embedding FROM templates ORDER BY id")])


def test_enrolled_templates_are_flip_averaged_and_probes_one_pass(tmp_path: Path):
    """What enrolment stores is the face and its mirror averaged (two passes), what a frame is compared with it as
    is one pass; ``embed(template=True)`` and ``verify`` make the same two sides through the API."""
    import edgeface
    from edgeface.manifest import load_manifest
    from edgeface.vision.embed import l2_normalise

    fr = edgeface.load()
    assert load_manifest(fr.embedder.path).templates == "flip" and fr.templates.flip and not fr.embedder.flip
    with edgeface.Gallery(tmp_path / "g.sqlite") as people:
        people.enroll("obama", PHOTO)
    stored = l2_normalise(stored_embeddings(tmp_path / "g.sqlite"))[0]
    template, probe = fr.embed(PHOTO, template=True), fr.embed(PHOTO)
    assert float(stored @ template) > 0.9999  # the stored template is the flip-averaged one
    assert float(stored @ probe) < 0.999  # and not the one-pass probe: the mirror changed it
    verdict = fr.verify(PHOTO, PHOTO)
    assert verdict["same"] and abs(verdict["score"] - float(template @ probe)) < 1e-4


def test_a_gallery_of_one_pass_templates_is_moved_by_upgrade(tmp_path: Path):
    """A gallery enrolled with one-pass templates of the same network (an older ``single`` or default) is bound to
    another identity: the default refuses it, naming ``gallery upgrade``, which re-embeds its kept faces as
    flip-averaged templates; then it recognises."""
    from edgeface.vision.embed import l2_normalise, load_embedder, template_embedder

    model, gallery = one_pass_copy(tmp_path), tmp_path / "g.sqlite"
    enrolled = run_cli("enroll", "obama", str(PHOTO), "--gallery", str(gallery), "--model", str(model))
    assert enrolled.returncode == 0, enrolled.stderr
    before = stored_embeddings(gallery)
    recognize = ("recognize", "--source", str(PHOTO), "--gallery", str(gallery), "--model", "default", "--json")
    assert_one_line_error(run_cli(*recognize), "gallery upgrade")
    done = run_cli("gallery", "upgrade", "--model", "default", "--gallery", str(gallery), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["upgraded"] is True
    after = l2_normalise(stored_embeddings(gallery))
    assert float(after[0] @ l2_normalise(before)[0]) < 0.9999  # templates were made again, not kept
    image_template = template_embedder(load_embedder("default"))
    assert image_template.flip  # what upgrade used is what enrolment uses
    seen = run_cli(*recognize)
    assert seen.returncode == 0, seen.stderr
    assert "obama" in seen.stdout


@needs_shared
def test_eval_scores_probes_against_flip_templates_both_ways_and_stores_the_mode(tmp_path: Path):
    """``eval --templates flip`` scores each pair both ways (one-pass probe against flip-averaged template), and with
    --save-threshold stores that mode with the threshold placed for it; a manifest naming another mode is refused in
    one line."""
    from edgeface.manifest import load_manifest

    model = one_pass_copy(tmp_path, "small")
    pairs = small_pairs(tmp_path / "pairs.txt", folds=2, per=5)
    common = ("eval", str(model), "--lfw-dir", str(LFW), "--pairs", str(pairs), "--json")
    single = json.loads(run_cli(*common).stdout)
    flip = json.loads(run_cli(*common, "--templates", "flip").stdout)
    assert single["n_pairs"] == 20 and flip["n_pairs"] == 40
    assert flip["all_pairs"]["impostor_pairs"] == 2 * single["all_pairs"]["impostor_pairs"]
    assert load_manifest(model).templates == "single"  # evaluated, not stored
    assert_one_line_error(run_cli("eval", "default", "fast", *common[2:], "--templates", "flip"), "one model")
    big = small_pairs(tmp_path / "big.txt", folds=10, per=100)
    saved = run_cli("eval", str(model), "--lfw-dir", str(LFW), "--pairs", str(big), "--templates", "flip",
                    "--save-threshold", "--json")
    assert saved.returncode == 0, saved.stderr
    manifest = load_manifest(model)
    assert manifest.templates == "flip" and manifest.threshold == json.loads(saved.stdout)["saved_threshold"]
    sidecar = model.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    bad = tmp_path / "bad.tflite"
    shutil.copy(model, bad)
    from edgeface.tflite_metadata import bare_model

    bad.write_bytes(bare_model(bad.read_bytes()))  # the manifest beside it, not inside, is read
    bad.with_suffix(".json").write_text(json.dumps({**data, "templates": "mirror"}))
    assert_one_line_error(run_cli("info", str(bad)), "templates must be one of single, flip")
