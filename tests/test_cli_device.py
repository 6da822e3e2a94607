"""The device half end to end through the CLI, with TensorFlow blocked from import."""

import json
import shutil

import numpy as np
import pytest
from conftest import (
    LFW,
    PEER_FLAGS,
    PEER_FLOAT,
    PEER_UINT8,
    assert_one_line_error,
    needs_shared,
    run_cli,
    small_pairs,
)

from edgeface.vision.image import write_image

EVAL_KEYS = {"accuracy", "accuracy_se", "roc_auc", "tar_at_far", "threshold", "n_pairs", "n_detect_failed", "model",
             "seconds"}


@needs_shared
def test_eval_runs_without_tensorflow_and_reports_every_key(tmp_path):
    pairs = small_pairs(tmp_path / "pairs.txt", folds=3, per=4)
    result = run_cli("eval", str(PEER_FLOAT), *PEER_FLAGS, "--lfw-dir", str(LFW), "--pairs", str(pairs), "--json",
                     "--plot", str(tmp_path / "roc.png"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= EVAL_KEYS
    assert set(report["tar_at_far"]) == {"0.001", "0.003", "0.01"}
    assert report["n_pairs"] == 24
    assert report["accuracy"] >= 0.9  # the peer separates these easy pairs
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
    # second run hits the embedding cache and gives the identical answer
    again = json.loads(run_cli("eval", str(PEER_FLOAT), *PEER_FLAGS, "--lfw-dir", str(LFW), "--pairs", str(pairs),
                               "--json").stdout)
    assert again["accuracy"] == report["accuracy"] and again["roc_auc"] == report["roc_auc"]


@needs_shared
def test_quantized_model_and_flip_through_the_cli(tmp_path):
    pairs = small_pairs(tmp_path / "pairs.txt", folds=2, per=3)
    result = run_cli("eval", str(PEER_UINT8), *PEER_FLAGS, "--lfw-dir", str(LFW), "--pairs", str(pairs), "--flip",
                     "--json",
                     "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n_pairs"] == 12


@needs_shared
def test_faceless_image_falls_back_to_centre_crop_and_is_counted(tmp_path):
    lfw = tmp_path / "lfw"
    pairs = small_pairs(tmp_path / "pairs.txt", folds=2, per=2)
    names = {part for ln in pairs.read_text().splitlines()[1:] for part in ln.split() if not part.isdigit()}
    for name in names:
        shutil.copytree(LFW / name, lfw / name)
    victim = sorted((lfw / next(iter(sorted(names)))).glob("*.jpg"))[0]
    write_image(victim, np.full((250, 250, 3), 90, np.uint8))  # a grey square: no face
    result = run_cli("eval", str(PEER_FLOAT), *PEER_FLAGS, "--lfw-dir", str(lfw), "--pairs", str(pairs), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n_detect_failed"] >= 1


@needs_shared
def test_bad_inputs_give_one_line_errors(tmp_path):
    pairs = small_pairs(tmp_path / "pairs.txt")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"definitely not a flatbuffer" * 10)
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(PEER_FLOAT.read_bytes()[:100_000])
    bad_pairs = tmp_path / "bad.txt"
    bad_pairs.write_text("10 300\nAaron 1\n")
    lfw = tmp_path / "lfw"
    shutil.copytree(LFW / "Aaron_Peirsol", lfw / "Aaron_Peirsol")
    (lfw / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg").write_bytes(b"")
    one = tmp_path / "one.txt"
    one.write_text("1 1\nAaron_Peirsol 1 3\nAaron_Peirsol 3 Aaron_Peirsol 4\n")
    peer = ("eval", str(PEER_FLOAT), *PEER_FLAGS)
    cases = [
        (("eval", str(junk), "--lfw-dir", str(LFW), "--pairs", str(pairs)), "not a TFLite model"),
        (("eval", str(cut), "--lfw-dir", str(LFW), "--pairs", str(pairs)), "cut.tflite"),
        ((*peer, "--lfw-dir", str(LFW), "--pairs", str(bad_pairs)), "header promises"),
        ((*peer, "--lfw-dir", str(tmp_path / "nope"), "--pairs", str(pairs)), "not found"),
        ((*peer, "--lfw-dir", str(lfw), "--pairs", str(one)), "empty image"),
        ((*peer, "--lfw-dir", str(LFW), "--pairs", str(pairs), "--threads", "0"), "threads"),
        ((*peer, "--lfw-dir", str(LFW), "--pairs", str(pairs), "--workers", "100000"), "--workers/--threads must be"),
        ((*peer, "--lfw-dir", str(LFW), "--pairs", str(pairs), "--flip", "--save-threshold"), "without --flip"),
        (("eval", str(PEER_FLOAT), "--lfw-dir", str(LFW), "--pairs", str(pairs)), "--input-mean"),
        (("info", str(tmp_path / "missing.tflite")), "not found"),
    ]
    for args, needle in cases:
        assert_one_line_error(run_cli(*args), needle)


@needs_shared
def test_info_reads_tensors_without_tensorflow():
    result = run_cli("info", str(PEER_UINT8), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["backend"] == "ai-edge-litert"
    assert info["tensors"][0]["dtype"] == "uint8"
    table = " ".join(run_cli("info", str(PEER_UINT8), env={"COLUMNS": "200"}).stdout.split())
    assert "manifest │ none: pass --input-mean/--input-scale/--channels" in table


def test_info_table_shows_the_manifest():
    """What a user checks before trusting a file is in the table, not only in --json."""
    table = " ".join(run_cli("info", env={"COLUMNS": "250"}).stdout.split())
    manifest = json.loads(run_cli("info", "--json").stdout)["manifest"]
    assert f"alignment │ {manifest['alignment']}" in table and f"threshold │ {manifest['threshold']:.4f}" in table
    lfw = manifest["metrics"]["lfw"]
    assert "150x150 RGB, (pixel - 0.0) x 1.0" in table
    assert f"LFW View 2 │ {100 * lfw['accuracy']:.2f} % +- {100 * lfw['accuracy_se']:.2f}" in table


def test_the_shipped_models_say_where_their_weights_come_from_and_what_the_default_does():
    """The default is dlib's network part of the way from its public-domain weights to a harsh-light fine-tuning
    (issue #40), ``port`` those weights as they are; both one pass a face in the file, their templates flip-averaged
    as their manifests say (``templates: flip``: probes stay one pass). ``single``, the name of that network at one
    pass before, names the default. fast is a fine-tuned copy of the network less four blocks, at half the FLOPs or
    less, its accuracy recorded under the default's, its second schedule's init the first's model; it has no float
    twin, and asking for one is one line, not a missing-file surprise."""
    infos = {name: json.loads(run_cli("info", name, "--json").stdout) for name in ("default", "fast", "port")}
    manifests = {name: info["manifest"] for name, info in infos.items()}
    steps = {"default": ["dlib-port", "distill", "weight-average", "export"], "port": ["dlib-port", "export"],
             "fast": ["dlib-port", "drop-blocks", "distill", "distill", "export"]}  # fast: the second from the first
    for name, manifest in manifests.items():
        assert [step["step"] for step in manifest["chain"]] == steps[name]
        assert "public domain" in manifest["chain"][0]["licence"].lower()
    assert manifests["fast"]["architecture"] == "dlib-resnet-fast"
    first, second = manifests["fast"]["chain"][2:4]
    assert second["init"] == f"{first['out']}/model.keras"
    assert manifests["fast"]["flops"] <= 0.5 * manifests["default"]["flops"]
    assert manifests["fast"]["metrics"]["lfw"]["accuracy"] < manifests["default"]["metrics"]["lfw"]["accuracy"]
    for name in ("default", "port"):
        assert "flip" not in manifests[name]["chain"][-1] and manifests[name]["templates"] == "flip"
    assert manifests["fast"]["templates"] == "single"
    for info in infos.values():  # the file's own ops, counted, agree with what its manifest says (within 1 %)
        assert abs(info["graph_flops"] / info["manifest"]["flops"] - 1) < 0.01, info["graph_flops"]
    assert json.loads(run_cli("info", "single", "--json").stdout)["manifest"]["sha256"] == \
        manifests["default"]["sha256"]
    assert_one_line_error(run_cli("info", "fast-float32"), "not found")


def test_help_lists_every_command():
    result = run_cli("--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    for command in ("data", "models", "train", "distill", "prune", "lowrank", "cluster", "quantize", "export",
                    "eval", "bench", "compare", "optimize", "info", "enroll", "gallery", "recognize", "serve"):
        assert f" {command} " in result.stdout, command


@needs_shared
def test_dlib_peer_embeds_with_its_own_alignment(tmp_path):
    pytest.importorskip("dlib")
    pairs = small_pairs(tmp_path / "pairs.txt", folds=2, per=2)
    result = run_cli("eval", "dlib", "--lfw-dir", str(LFW), "--pairs", str(pairs), "--json", "--threads", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == "dlib" and report["accuracy"] >= 0.75
