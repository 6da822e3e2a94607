"""Bring your own model: `edgeface import` (ONNX, Keras, float .tflite) and `edgeface quantize MODEL.tflite` with the
LiteRT quantizer, on real converters, real .tflite files and real faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import DATA, MEDIA, PEER_FLAGS, PEER_FLOAT, PEER_UINT8, assert_one_line_error, needs_shared, run_cli

from edgeface.manifest import load_manifest
from edgeface.quantize.tflite_rewrite import int8_friendly
from edgeface.runtime.graph import list_ops, modernised, read_graph
from edgeface.runtime.interpreter import Model

CELEBA = DATA / "celeba-subset"
NORMALISE = ["--input-mean", "127.5", "--input-scale", "0.0078125", "--channels", "RGB"]


def tiny_onnx(path: Path, size: int | str = 112) -> Path:
    """Conv -> PRelu -> global pool -> Gemm, NCHW, dynamic batch: the shape of an InsightFace-style embedder."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"W": rng.normal(0, 0.2, (8, 3, 3, 3)), "B": rng.normal(0, 0.1, 8),
               "S": rng.uniform(0.05, 0.4, (8, 1, 1)), "G": rng.normal(0, 0.3, (16, 8)), "GB": np.zeros(16)}
    nodes = [helper.make_node("Conv", ["input", "W", "B"], ["c"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4),
             helper.make_node("PRelu", ["c", "S"], ["p"]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "G", "GB"], ["embedding"], transB=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 16])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_import_onnx_matches_onnxruntime(tmp_path):
    import onnxruntime as ort

    source = tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "tiny.tflite"
    result = run_cli("import", str(source), "-o", str(out), *NORMALISE, "--json", block_tf=False)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["format"] == "onnx" and info["embedding_size"] == 16 and info["normalisation_check"]["checked"] is False
    manifest = load_manifest(out)
    assert manifest.input.mean == 127.5 and manifest.alignment == "yunet-5pt" and manifest.chain[0]["step"] == "import"
    model = Model(out)
    assert model.input.shape == (1, 112, 112, 3)  # NCHW became NHWC, the batch fixed to 1
    x = np.random.default_rng(1).uniform(-1, 1, (1, 112, 112, 3)).astype(np.float32)
    expected = ort.InferenceSession(str(source)).run(None, {"input": x.transpose(0, 3, 1, 2)})[0]
    np.testing.assert_allclose(model.invoke(x)[0], expected, atol=1e-5)


def test_import_onnx_without_tensorflow_says_what_to_install(tmp_path):
    source = tiny_onnx(tmp_path / "tiny.onnx")
    assert_one_line_error(run_cli("import", str(source), "-o", str(tmp_path / "o.tflite"), *NORMALISE),
                          "pip install 'edgeface[import]'")


def test_import_refuses_what_it_cannot_take(tmp_path):
    assert_one_line_error(run_cli("import", str(tmp_path / "none.onnx"), "-o", str(tmp_path / "o.tflite"),
                                  *NORMALISE), "not found")
    (tmp_path / "notes.txt").write_text("x")
    assert_one_line_error(run_cli("import", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "o.tflite"),
                                  *NORMALISE), "expected .onnx")
    (tmp_path / "folder").mkdir()
    assert_one_line_error(run_cli("import", str(tmp_path / "folder"), "-o", str(tmp_path / "o.tflite"), *NORMALISE),
                          "saved_model.pb")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage" * 10)
    assert_one_line_error(run_cli("import", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "o.tflite"),
                                  *NORMALISE, block_tf=False), "bad.onnx")
    anysize = tiny_onnx(tmp_path / "anysize.onnx", size="S")
    assert_one_line_error(run_cli("import", str(anysize), "-o", str(tmp_path / "o.tflite"), *NORMALISE,
                                  block_tf=False), "--size")
    assert_one_line_error(run_cli("import", str(anysize), "-o", str(tmp_path / "o.tflite")), "--check-faces")
    assert not (tmp_path / "o.tflite").exists()


def test_import_any_size_onnx_at_the_size_given(tmp_path):
    anysize = tiny_onnx(tmp_path / "anysize.onnx", size="S")
    result = run_cli("import", str(anysize), "-o", str(tmp_path / "s.tflite"), *NORMALISE, "--size", "96",
                     block_tf=False)
    assert result.returncode == 0, result.stderr
    assert Model(tmp_path / "s.tflite").input.shape == (1, 96, 96, 3)


def test_import_a_keras_h5(tmp_path):
    from edgeface.training.tf_setup import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2)(inputs)
    x = keras.layers.PReLU(shared_axes=[1, 2])(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(8)(x))
    model.save(tmp_path / "user.h5")
    out = tmp_path / "user.tflite"
    result = run_cli("import", str(tmp_path / "user.h5"), "-o", str(out), *NORMALISE, block_tf=False)
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(2).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(Model(out).invoke(x)[0], model.predict(x, verbose=0), atol=1e-5)


@needs_shared
def test_import_checks_the_normalisation_on_real_faces(tmp_path):
    gallery = MEDIA / "gallery"
    wrong = run_cli("import", str(PEER_FLOAT), "-o", str(tmp_path / "p.tflite"), *NORMALISE, "--check-faces",
                    str(gallery))
    assert_one_line_error(wrong, "normalisation looks wrong")
    assert "--input-mean 0 --input-scale 1 --channels RGB" in wrong.stderr  # it names the convention that works
    assert not (tmp_path / "p.tflite").exists()
    picked = run_cli("import", str(PEER_FLOAT), "-o", str(tmp_path / "p.tflite"), "--check-faces", str(gallery),
                     "--json")
    assert picked.returncode == 0, picked.stderr
    check = json.loads(picked.stdout)["normalisation_check"]
    assert check["best_convention"] == "0..255 RGB" and check["given"]["auc"] > 0.95
    spec = load_manifest(tmp_path / "p.tflite").input
    assert (spec.mean, spec.scale, spec.channels) == (0.0, 1.0, "RGB")
    random_net = tiny_onnx(tmp_path / "random.onnx")
    assert_one_line_error(run_cli("import", str(random_net), "-o", str(tmp_path / "r.tflite"), "--check-faces",
                                  str(gallery), block_tf=False), "does not tell these")
    assert_one_line_error(run_cli("import", str(PEER_UINT8), "-o", str(tmp_path / "u.tflite"), *PEER_FLAGS),
                          "already quantized")


def test_prelu_rewrite_is_exact_and_leaves_no_prelu(tmp_path):
    from edgeface.training.model_import import to_float_tflite

    content, _ = to_float_tflite(tiny_onnx(tmp_path / "t.onnx"))
    assert "PRELU" in {o.kind for o in list_ops(read_graph(content))}
    friendly, counts = int8_friendly(content)
    assert counts["PRELU"] == 1
    kinds = [o.kind for o in list_ops(read_graph(friendly))]
    assert "PRELU" not in kinds and kinds.count("MUL") == 2
    x = np.random.default_rng(3).uniform(-1, 1, (1, 112, 112, 3)).astype(np.float32)
    np.testing.assert_allclose(Model("a", content=friendly).invoke(x)[0], Model("b", content=content).invoke(x)[0],
                               atol=1e-6)


@needs_shared
def test_quantize_lists_what_xnnpack_leaves_behind(tmp_path):
    # the peer's min/max PReLU without the rewrite: int8 MAXIMUM has no XNNPACK kernel
    imported = tmp_path / "peer.tflite"
    assert run_cli("import", str(PEER_FLOAT), "-o", str(imported), *PEER_FLAGS).returncode == 0
    result = run_cli("quantize", str(imported), "-o", str(tmp_path / "q.tflite"), "--calib-data", str(CELEBA),
                     "--calib", "8", "--no-rewrite", "--json")
    assert result.returncode == 0, result.stderr
    log = json.loads(result.stdout)
    off = log["not_on_xnnpack"]
    assert off["float model"] == {} and off["quantized"].get("MAXIMUM int8") == 33
    assert log["left_in_float"] == {"MINIMUM": 33}  # the quantizer has no int8 MINIMUM: it is named


@needs_shared
def test_int8_min_max_work_on_their_inputs_scale():
    from edgeface.manifest import InputSpec
    from edgeface.quantize.tflite_quantize import calibration_crops, prepare_float, quantize_float

    spec = InputSpec(mean=0.0, scale=1.0, channels="RGB")
    content, _ = prepare_float(PEER_FLOAT.read_bytes())
    faces = calibration_crops([CELEBA], 24, None)
    plain, shared = (quantize_float(content, "int8", spec, faces[:16], rewrite=r) for r in (False, True))
    count = lambda data, kind: sum(o.kind == kind for o in list_ops(read_graph(data)))  # noqa: E731
    # the quantizer's 33 requantizations before MAXIMUM and 33 DEQUANTIZE + float MINIMUM + QUANTIZE are gone
    assert count(plain, "QUANTIZE") == 66 and count(plain, "DEQUANTIZE") == 33
    assert count(shared, "QUANTIZE") == 0 and count(shared, "DEQUANTIZE") == 0
    assert {o.precision for o in list_ops(read_graph(shared)) if o.kind in ("MINIMUM", "MAXIMUM")} == {"int8"}
    x = faces[16:].astype(np.float32)  # faces the calibration did not see
    reference = Model("f", content=content)
    cosines = []
    for data in (plain, shared):
        model = Model("q", content=data)
        a = np.stack([model.invoke(model.quantize_input(v[None]))[0][0] for v in x])
        b = np.stack([reference.invoke(v[None])[0][0] for v in x])
        cosines.append(float(np.min(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))))
    assert cosines[1] > 0.8 and cosines[1] > cosines[0] - 0.05  # no worse than the quantizer's own graph


@needs_shared
def test_peer_rewrites_are_exact_in_float():
    original = modernised(PEER_FLOAT.read_bytes())
    friendly, counts = int8_friendly(original)
    # its PReLU slopes run from -1.2 to 2.0, outside the 3-op form: kept for share_minmax_params after quantization
    assert counts["min/max PReLU"] == 0 and counts["PAD"] == 13  # every stride-1 PAD folded
    kinds = [o.kind for o in list_ops(read_graph(friendly))]
    assert kinds.count("MINIMUM") == 33 and kinds.count("PAD") == 4
    x = np.random.default_rng(4).uniform(0, 255, (1, 112, 112, 3)).astype(np.float32)
    np.testing.assert_allclose(Model("a", content=friendly).invoke(x)[0], Model("b", content=original).invoke(x)[0],
                               atol=1e-5)


def test_old_schema_opcodes_and_signature_are_modernised():
    from edgeface.default_model import default_model_path

    data = default_model_path("edgeface-small-float32.tflite").read_bytes()
    model = read_graph(data)
    for code in model.operatorCodes:  # as schema v3a writers left them
        code.builtinCode = 0
    model.signatureDefs = None
    from edgeface.runtime.graph import pack

    old = pack(model)
    fixed = read_graph(modernised(old))
    assert [max(c.builtinCode, c.deprecatedBuiltinCode) for c in fixed.operatorCodes] == \
        [c.builtinCode for c in fixed.operatorCodes]
    assert fixed.signatureDefs[0].signatureKey == b"serving_default"


@needs_shared
def test_quantize_a_float_tflite_to_int8_on_xnnpack(tmp_path):
    from edgeface.default_model import default_model_path
    from edgeface.vision.embed import load_embedder

    float_model = default_model_path("edgeface-small-float32.tflite")
    out = tmp_path / "q.tflite"
    result = run_cli("quantize", str(float_model), "-o", str(out), "--calib-data", str(CELEBA), "--calib", "24",
                     "--layers", "--json")
    assert result.returncode == 0, result.stderr
    # the quantizer's own progress bars (a tick per op and sample) and its warning stay behind edgeface's bar
    assert "Running Calibration" not in result.stderr and "Warning" not in result.stderr, result.stderr[:300]
    log = json.loads(result.stdout)
    assert log["calibration_faces"] == 24 and log["size_bytes"] < 0.4 * log["float_size_bytes"]
    assert log["layer_errors"] and all(r["cosine"] > 0.5 for r in log["layer_errors"])
    ops = list_ops(read_graph(out.read_bytes()))
    assert {o.precision for o in ops if o.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")} == {"int8"}
    assert log["not_on_xnnpack"] == {"float model": {}, "quantized": {}}
    profile = json.loads(run_cli("bench", str(out), "--ops", "--json").stdout)
    assert profile["not_on_xnnpack"] == {}
    manifest = load_manifest(out)
    assert manifest.chain[-1]["step"] == "quantize"
    assert manifest.alignment == load_manifest(float_model).alignment == "yunet-5pt"  # carried from the float model
    # the quantized file embeds real faces like its float model
    faces = np.stack([np.asarray(f) for f in _aligned(CELEBA, 6, manifest.alignment)])
    a, b = load_embedder(out).embed(faces), load_embedder(float_model).embed(faces)
    assert float(np.min(np.sum(a * b, axis=1))) > 0.9


@needs_shared
def test_the_other_recipes_quantize_what_they_say_and_keep_the_embedding(tmp_path):
    """int16x8 (int16 activations, int8 weights), dynamic (int8 weights, activations quantized on the fly) and
    weight-only (int8 weights, DEQUANTIZEd to float at load): each file's convolutions compute the way its recipe
    says, it is smaller than the float file, it embeds real faces like the float model, and its manifest says so."""
    from edgeface.default_model import default_model_path
    from edgeface.runtime.graph import type_name
    from edgeface.vision.embed import load_embedder

    float_model = default_model_path("edgeface-small-float32.tflite")
    faces = _aligned(CELEBA, 6, load_manifest(float_model).alignment)
    reference = load_embedder(float_model).embed(faces)
    conv_precision = {"int16x8": "int16x8", "dynamic": "dynamic-int8", "weight-only": "float32"}
    for recipe, precision in conv_precision.items():
        out = tmp_path / f"{recipe}.tflite"
        calib = ["--calib-data", str(CELEBA), "--calib", "16"] if recipe == "int16x8" else []
        result = run_cli("quantize", str(float_model), "-o", str(out), "--recipe", recipe, *calib, "--json")
        assert result.returncode == 0, (recipe, result.stderr)
        log = json.loads(result.stdout)
        assert log["recipe"] == recipe and log["size_bytes"] < 0.5 * log["float_size_bytes"], log
        graph = read_graph(out.read_bytes())
        ops = list_ops(graph)
        assert {o.precision for o in ops if o.kind == "CONV_2D"} == {precision}, recipe
        if recipe == "weight-only":  # the float convs read weights a DEQUANTIZE makes from int8 constants
            sub = graph.subgraphs[0]
            dequantized = {type_name(sub.tensors[sub.operators[o.index].inputs[0]].type) for o in ops
                           if o.kind == "DEQUANTIZE"}
            assert dequantized == {"int8"}
        assert load_manifest(out).chain[-1]["step"] == "quantize"
        got = load_embedder(out).embed(faces)
        assert float(np.min(np.sum(got * reference, axis=1))) > 0.95, recipe


def _aligned(folder: Path, count: int, alignment: str | None) -> np.ndarray:
    from edgeface.quantize.tflite_quantize import calibration_crops

    return calibration_crops([folder], count, alignment, seed=7)


@needs_shared
def test_quantize_refuses_with_one_line(tmp_path):
    from edgeface.default_model import default_model_path
    from edgeface.vision.yunet import yunet_model_path

    out = str(tmp_path / "q.tflite")
    assert_one_line_error(run_cli("quantize", str(default_model_path("edgeface-small.tflite")), "-o", out,
                                  "--calib-data", str(CELEBA)),
                          "already quantized")
    float_model = str(default_model_path("edgeface-small-float32.tflite"))
    assert_one_line_error(run_cli("quantize", float_model, "-o", out), "needs calibration faces")
    # one precision option for every model kind (--mode and --recipe are its other names), checked per kind
    assert_one_line_error(run_cli("quantize", float_model, "-o", out, "--precision", "qat"),
                          "not one for a .tflite model", "int16x8")
    assert_one_line_error(run_cli("quantize", float_model, "-o", out, "--recipe", "float16"), "int8, int16x8")
    assert_one_line_error(run_cli("quantize", float_model, "-o", out, "--calib-data", str(tmp_path / "none")),
                          "not found")
    assert_one_line_error(run_cli("quantize", float_model, "-o", out, "--calib-data", str(CELEBA), "--max-drop",
                                  "0.3"), "--lfw-dir")
    assert_one_line_error(run_cli("quantize", str(yunet_model_path("litert")), "-o", out, *PEER_FLAGS,
                                  "--calib-data", str(CELEBA)), "dynamic input shape")
    assert_one_line_error(run_cli("quantize", str(PEER_FLOAT), "-o", out, "--calib-data", str(CELEBA)),
                          "no manifest")
    assert not Path(out).exists()


@needs_shared
def test_max_drop_keeps_layers_float_until_the_budget_holds(tmp_path):
    from conftest import LFW, small_pairs

    from edgeface.default_model import default_model_path
    from edgeface.quantize.tflite_quantize import lfw_scorer, prepare_float, within_budget

    float_model = default_model_path("edgeface-small-float32.tflite")
    manifest = load_manifest(float_model)
    content, _ = prepare_float(float_model.read_bytes())
    faces = _aligned(CELEBA, 12, manifest.alignment)
    pairs = small_pairs(tmp_path / "pairs.txt", folds=2, per=4)
    score = lfw_scorer(LFW, pairs, manifest.input, manifest.alignment)
    # a budget below zero cannot be met by any mix: the search must double the float layers up to all of them
    quant, log = within_budget(content, "int8", manifest.input, faces, score, max_drop_pp=-100.0)
    kept = [len(s["kept_float"]) for s in log["steps"]]
    assert kept[:3] == [0, 1, 2] and kept == sorted(kept) and kept[-1] >= len(log["layer_errors"])
    assert log["within_budget"] is False
    assert len(quant) > 0.9 * len(content)  # every weighted layer ended in float
