"""`edgeface bench` on real .tflite files with TensorFlow blocked, and its FLOPs counter."""

import json

import pytest
from conftest import PEER_FLAGS, PEER_FLOAT, PEER_UINT8, assert_one_line_error, needs_shared, run_cli

from edgeface.runtime.flops import count_tflite_flops
from edgeface.vision.blazeface import model_dir

BENCH_KEYS = {"model", "threads", "init_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "peak_rss_mb", "size_bytes"}


@needs_shared
def test_flops_of_mobilefacenet_match_the_published_count():
    # MobileFaceNet: 221 M multiply-adds at 112x112 (Chen et al. 2018 report 0.22 G MAdds)
    assert count_tflite_flops(PEER_FLOAT) == pytest.approx(2 * 221e6, rel=0.01)
    assert count_tflite_flops(PEER_UINT8) == count_tflite_flops(PEER_FLOAT)


@needs_shared
def test_bench_two_models_two_thread_counts_without_tensorflow():
    detector = model_dir() / "face_detection_short_range.tflite"
    result = run_cli("bench", str(PEER_FLOAT), str(detector), "--threads", "1,2", "--runs", "15", "--warmup", "2",
                     "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 4
    for row in rows:
        assert set(row) >= BENCH_KEYS
        assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert 0 < row["efficiency"] < 5
    by = {(r["model"], r["threads"]): r for r in rows}
    # the detector does ~1/15 of the embedder's work: it must not be slower
    assert by[(str(detector), 1)]["p50_ms"] < by[(str(PEER_FLOAT), 1)]["p50_ms"]
    assert by[(str(PEER_FLOAT), 1)]["ratio_to_first"] == 1.0
    assert by[(str(PEER_FLOAT), 1)]["size_bytes"] == PEER_FLOAT.stat().st_size


def test_bench_bad_input(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model")
    detector = str(model_dir() / "face_detection_short_range.tflite")
    assert_one_line_error(run_cli("bench", str(junk)), "not a TFLite model")
    assert_one_line_error(run_cli("bench", detector, "--threads", "0"), "at least 1")
    assert_one_line_error(run_cli("bench", detector, "--threads", "one"), "comma-separated")
    assert_one_line_error(run_cli("bench", str(tmp_path / "none.tflite")), "not found")


@needs_shared
def test_pipeline_profile_times_every_stage():
    from conftest import MEDIA

    result = run_cli("bench", str(PEER_FLOAT), "--pipeline", str(MEDIA / "probes"), "--json", *PEER_FLAGS)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames"] == 4 and report["faces"] >= 4
    assert {"decode", "detect", "align", "embed", "match"} <= set(report["stages"])
    assert sum(s["share"] for s in report["stages"].values()) == pytest.approx(1.0)
