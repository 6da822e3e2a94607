"""`edgeface bench` on real .tflite files with TensorFlow blocked, and its FLOPs counter."""

import json
import shutil
import subprocess
import sys

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
    assert_one_line_error(run_cli("bench", detector, "--threads", "0"), "from 1 to")
    assert_one_line_error(run_cli("bench", detector, "--threads", "1,100000"), "from 1 to", "100000")
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


def test_roofline_holds_each_model_against_its_own_precision():
    from edgeface.default_model import default_model_path

    int8 = default_model_path()
    float32 = int8.with_name("edgeface-default-float32.tflite")
    result = run_cli("bench", str(int8), str(float32), "--runs", "30", "--warmup", "3", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["model"]: r for r in json.loads(result.stdout)}
    assert rows[str(int8)]["peak_of"] == "int8" and rows[str(float32)]["peak_of"] == "float32"
    for row in rows.values():
        assert 0 < row["efficiency"] <= 1.0, row  # "190 % of peak" came from an int8 model on a float peak
    assert rows[str(int8)]["peak_gflops"] > rows[str(float32)]["peak_gflops"]


def test_probe_models_compute_a_real_convolution():
    import numpy as np

    from edgeface.runtime.interpreter import Model
    from edgeface.runtime.roofline import probe_model

    model = Model("<probe>", content=probe_model("float32", pixels=4, channels=8))
    x = np.random.default_rng(1).uniform(-1, 1, (1, 4, 4, 8)).astype(np.float32)
    from edgeface.runtime.graph import read_graph

    weights = read_graph(model.content).buffers[1].data.view(np.float32).reshape(8, 8)  # (out, in) of a 1x1 conv
    np.testing.assert_allclose(model.invoke(x)[0], x @ weights.T, rtol=1e-4, atol=1e-5)


def test_one_op_models_reproduce_the_op_inside_the_graph():
    import numpy as np

    from edgeface.default_model import default_model_path
    from edgeface.runtime.graph import list_ops, one_op_model, read_graph
    from edgeface.runtime.interpreter import Model
    from edgeface.runtime.ops_profile import tensor_values
    from edgeface.runtime.roofline import random_input

    content = default_model_path().read_bytes()
    graph = read_graph(content)
    x = random_input(Model("m", content=content).input, np.random.default_rng(0))
    values = tensor_values(content, x)
    for op in list_ops(graph)[:6]:
        single, inputs = one_op_model(graph, op.index)
        alone = Model(f"op{op.index}", content=single, xnnpack=False).interpreter
        for d, t in zip(alone.get_input_details(), inputs, strict=True):
            alone.set_tensor(d["index"], values[t])
        alone.invoke()
        out = graph.subgraphs[0].operators[op.index].outputs[0]
        np.testing.assert_array_equal(alone.get_tensor(alone.get_output_details()[0]["index"]), values[out])


def test_ops_profile_of_the_default_model():
    result = run_cli("bench", "--ops", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    ops = report["ops"]
    assert [r["ms"] for r in ops] == sorted((r["ms"] for r in ops), reverse=True)
    assert sum(r["share"] for r in ops) == pytest.approx(1.0)
    assert {r["op"] for r in ops} >= {"CONV_2D", "ADD", "MAX_POOL_2D"}
    # the shipped model is all XNNPACK in int8 (no PReLU, no MIN/MAX, its average pools rewritten as convs) but for
    # the mirror image its flip averaging makes of the input (REVERSE_V2 on 150x150x3 bytes: a copy, a few us)
    assert set(report["not_on_xnnpack"]) <= {"REVERSE_V2 int8"}
    assert sum(r["share"] for r in ops if r["op"] == "REVERSE_V2") < 0.03
    # ops timed alone add up to the whole model, within call overhead and lost fusion (best times: a busy machine
    # interrupts a whole-model run far more often than a single op)
    assert 0.5 < report["sum_of_ops_best_ms"] / report["whole_model_best_ms"] < 2.0
    table = run_cli("bench", "--ops", "--top", "3")
    assert table.returncode == 0 and "time by op type" in table.stdout and "CONV_2D" in table.stdout


@needs_shared
def test_ops_profile_names_the_ops_xnnpack_leaves_to_reference_kernels():
    # the authors' uint8 MobileFaceNet writes PReLU as MIN/MAX/MUL: XNNPACK has no int8 MINIMUM/MAXIMUM
    result = run_cli("bench", str(PEER_UINT8), "--ops", "--json")
    assert result.returncode == 0, result.stderr
    off = json.loads(result.stdout)["not_on_xnnpack"]
    assert off.get("MINIMUM int8", 0) >= 30 and off.get("MAXIMUM int8", 0) >= 30
    assert "CONV_2D int8" not in off


def test_a_mixed_model_is_held_against_the_peak_of_its_own_mix():
    from edgeface.runtime.bench import peak_label
    from edgeface.runtime.roofline import mixed_peak

    # 100 MFLOP at 300 GOP/s plus 100 MFLOP at 100 GFLOP/s take 1.33 ms: 150 G/s is the best the mix can do
    assert mixed_peak({"int8": 100, "float32": 100}, {"int8": 300.0, "float32": 100.0}) == pytest.approx(150.0)
    assert peak_label({"int8": 970, "float32": 30}) == "int8 97 % + float32 3 %"
    assert peak_label({"float32": 5}) == "float32"


def test_a_file_against_its_own_copy_reads_1x_on_a_busy_machine(tmp_path):
    """Interleaved rounds: the same file twice reads within 0.9-1.1x in either order while two processes keep both
    cores busy; two runs after the load agree on "of peak" within 15 % (the probe is a median of repeats, checked
    against the instruction set's limit)."""
    from edgeface.default_model import resolve_model
    from edgeface.runtime.bench import bench

    model = str(resolve_model("small"))
    copy = str(tmp_path / "copy.tflite")
    shutil.copyfile(model, copy)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        forward = bench([model, copy], [1], runs=150, warmup=20)
        backward = bench([copy, model], [1], runs=150, warmup=20)
    finally:
        for b in burners:
            b.kill()
    for rows in (forward, backward):
        assert 0.9 <= rows[1]["ratio_to_first"] <= 1.1, [(r["model"], r["p50_ms"]) for r in rows]
        assert rows[0]["rounds"] == 40 and rows[0]["runs"] == 160
        assert all(r["pinned"] for r in rows)  # each round's models share one core (a VM's cores differ in speed)
    # two runs once the load is gone agree on "of peak"
    first, second = (bench([model], [1], runs=150, warmup=20)[0] for _ in range(2))
    for row in (first, second):
        probe = row["peak_probes"]["int8"]
        assert probe["spread"] < 0.5 and "suspect" not in probe["check"], probe
    assert abs(first["efficiency"] - second["efficiency"]) / first["efficiency"] < 0.15, (first, second)
