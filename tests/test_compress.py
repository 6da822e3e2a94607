"""Compression on a tiny model and real aligned faces: every technique yields a runnable, valid .tflite."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, needs_shared, prepared_orl, run_cli

pytestmark = [needs_shared, pytest.mark.slow]  # TensorFlow training: minutes (make test-fast skips them)
tf_setup = pytest.importorskip("edgeface.training.tf_setup")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    """A tiny MobileFaceNet-shaped model trained briefly, its file, and 60 aligned ORL faces."""
    from edgeface.manifest import Manifest
    from edgeface.training.compress.finetune import FaceSet
    from edgeface.training.models import build_model
    from edgeface.training.models.registry import INPUT_SPEC, count_flops
    from edgeface.training.train.keras_io import save_keras

    faces_dir = prepared_orl(tmp_path_factory.mktemp("orl"))
    tf_setup.tf.keras.utils.set_random_seed(0)
    model = build_model("mobilefacenet", width=0.25, embedding_size=32)
    root = tmp_path_factory.mktemp("models")
    path = save_keras(model, root / "base.keras", Manifest(input=INPUT_SPEC, embedding_size=32,
                                                            params=model.count_params(), flops=count_flops(model),
                                                            architecture="mobilefacenet"))
    return model, path, faces_dir, FaceSet([faces_dir], model, limit=64)


def tflite_agrees(keras_model, tflite: Path, faces, tol: float) -> None:
    from edgeface.training.train.keras_embedder import KerasEmbedder
    from edgeface.vision.embed import TFLiteEmbedder

    a = KerasEmbedder(keras_model).embed(faces.faces[:8])
    b = TFLiteEmbedder(tflite).embed(faces.faces[:8])
    assert (1 - np.sum(a * b, axis=1)).max() < tol


def test_training_batches_are_the_model_input_of_each_face_or_its_mirror(setup):
    """FaceSet keeps faces uint8 and normalises per batch in the graph: each batch row must be exactly what
    vision.embed.preprocess makes of one of the faces (or of its mirror image), for a BGR, mean-shifted spec too."""
    from dataclasses import replace

    from edgeface.vision.embed import preprocess

    _, _, _, faces = setup
    original = faces.spec
    faces.spec = replace(original, channels="BGR", mean=100.0, scale=1 / 64)
    try:
        rows, targets = next(iter(faces.dataset(16)))
        expected = preprocess(faces.faces, faces.spec)
    finally:
        faces.spec = original
    for row, target in zip(rows.numpy(), targets.numpy(), strict=True):
        i = int(np.argmax(faces.targets @ target))  # the face this row came from, by its teacher target
        assert np.allclose(row, expected[i], atol=1e-5) or np.allclose(row, expected[i][:, ::-1], atol=1e-5)


def test_faces_are_read_into_one_array_and_a_stray_size_is_named(setup, tmp_path):
    import cv2

    from edgeface.errors import EdgefaceError
    from edgeface.training.compress.finetune import read_into_one_array
    from edgeface.training.train.dataset import prepared_faces
    from edgeface.vision.image import read_image

    _, _, faces_dir, _ = setup
    paths = prepared_faces([faces_dir])[0][:5]
    assert np.array_equal(read_into_one_array(paths), np.stack([read_image(p) for p in paths]))
    odd = tmp_path / "odd.png"
    cv2.imwrite(str(odd), np.zeros((96, 80, 3), np.uint8))
    with pytest.raises(EdgefaceError, match=r"odd\.png: 80x96 face"):
        read_into_one_array([*paths, odd])


def test_magnitude_pruning_reaches_sparsity_and_shrinks_gzip(setup, tmp_path):
    from edgeface.training.compress.prune import magnitude_prune
    from edgeface.training.export import export

    model, _, _, faces = setup
    before = [w.copy() for w in model.get_weights()]
    pruned, report = magnitude_prune(model, 0.75, faces, epochs=2, batch=16)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))  # original intact
    big = [r for r in report if r["weights"] > 500 and "dw" not in r["layer"]]
    assert big and min(r["sparsity"] for r in big) > 0.7
    dense, _ = export(model, tmp_path / "dense.tflite")
    sparse, _ = export(pruned, tmp_path / "sparse.tflite")
    assert len(gzip.compress(sparse.read_bytes())) < 0.75 * len(gzip.compress(dense.read_bytes()))
    tflite_agrees(pruned, sparse, faces, 1e-4)


def test_structured_pruning_builds_a_thinner_model_that_runs(setup, tmp_path):
    from edgeface.training.compress.prune import structured_prune
    from edgeface.training.export import export
    from edgeface.training.models.registry import count_flops

    model, _, _, faces = setup
    thin, report = structured_prune(model, 0.5, faces, epochs=1, batch=16)
    assert thin.count_params() < 0.85 * model.count_params()
    assert count_flops(thin) < 0.8 * count_flops(model)
    assert all(r["kept"] < r["channels"] for r in report if r.get("channels", 0) >= 16)
    path, manifest = export(thin, tmp_path / "thin.tflite")
    assert manifest.params == thin.count_params()
    tflite_agrees(thin, path, faces, 1e-4)


def test_structured_pruning_without_finetune_keeps_the_kept_channels_exact(setup):
    """Nothing removed (ratio 0.01 rounds every group back to all its channels): the thin model rebuilt from the
    config computes exactly what the original does. Half removed: every prunable group really loses channels."""
    from edgeface.training.compress.channels import channel_groups
    from edgeface.training.compress.prune import structured_prune

    model, _, _, faces = setup
    x = faces.inputs(faces.faces[:4])
    groups = channel_groups(model)
    assert groups
    same, report = structured_prune(model, 0.01, None)
    assert all(r["kept"] == r["channels"] for r in report if "group" in r)
    assert np.allclose(model(x, training=False).numpy(), same(x, training=False).numpy(), atol=1e-4)
    thin, report = structured_prune(model, 0.5, None)
    assert all(r["kept"] < r["channels"] for r in report if r.get("channels", 0) >= 16)
    assert thin.count_params() < model.count_params()


def test_lowrank_equals_the_truncated_svd(setup):
    from edgeface.training.compress.lowrank import lowrank

    model, _, _, faces = setup
    factored, report = lowrank(model, None, rank=4)
    assert report and all(r["params_after"] < r["params_before"] for r in report)
    reference = __import__("edgeface.training.tf_setup", fromlist=["keras"]).keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    for row in report:
        layer = reference.get_layer(row["layer"])
        w = layer.get_weights()
        k = w[0].reshape(-1, w[0].shape[-1])
        u, s, vt = np.linalg.svd(k, full_matrices=False)
        w[0] = ((u[:, :4] * s[:4]) @ vt[:4]).reshape(w[0].shape)
        layer.set_weights(w)
    x = faces.inputs(faces.faces[:4])
    assert np.allclose(reference(x, training=False).numpy(), factored(x, training=False).numpy(), atol=1e-4)


def test_clustering_leaves_few_distinct_values(setup, tmp_path):
    from edgeface.training.compress.cluster import cluster
    from edgeface.training.export import export

    model, _, _, faces = setup
    clustered = cluster(model, 8, faces, epochs=1, batch=16)
    kernels = [w.numpy() for layer in clustered.layers for w in layer.weights
               if "kernel" in w.name and "depthwise" not in w.name and w.shape.num_elements() > 256]
    assert kernels and max(len(np.unique(k)) for k in kernels) <= 8
    path, _ = export(clustered, tmp_path / "clustered.tflite")
    tflite_agrees(clustered, path, faces, 1e-4)


def test_cli_ptq_and_qat_produce_int8_files(setup, tmp_path):
    _, path, faces_dir, _ = setup
    for mode, extra in (("int8", ["--calib-data", str(faces_dir), "--calib", "40"]),
                        ("dynamic", []), ("qat", ["--data", str(faces_dir), "--epochs", "1", "--faces", "64"])):
        out = tmp_path / f"{mode}.tflite"
        result = run_cli("quantize", str(path), "-o", str(out), "--mode", mode, *extra, "--json", block_tf=False)
        assert result.returncode == 0, result.stderr
        manifest = json.loads(out.with_suffix(".json").read_text())
        assert manifest["chain"][-1]["mode"] == mode
        if mode != "dynamic":
            assert manifest["quantization"]["input"]["dtype"] == "int8"


def test_compression_refuses_what_it_cannot_handle(setup, tmp_path):
    keras = tf_setup.keras
    inputs = keras.Input((112, 112, 3))
    x = keras.layers.Conv2D(8, 3)(inputs)
    x = keras.layers.PReLU(name="odd_prelu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    odd = keras.Model(inputs, x)
    path = tmp_path / "odd.keras"
    odd.save(path)
    _, _, faces_dir, _ = setup
    assert_one_line_error(run_cli("prune", str(path), "-o", str(tmp_path / "o.keras"), "--data", str(faces_dir),
                                  block_tf=False), "odd_prelu")
    assert_one_line_error(run_cli("prune", str(path), "-o", str(tmp_path / "o.keras"), block_tf=False),
                          "needs --data")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a keras file")
    assert_one_line_error(run_cli("lowrank", str(junk), "-o", str(tmp_path / "o.keras"), "--rank", "2",
                                  block_tf=False), "cannot load Keras model")


def test_structured_pruning_of_a_vgg_is_exact_for_channels_that_carry_nothing():
    """VGG chains run conv -> BN -> ReLU -> pool -> conv, and the last one reaches the Dense through Flatten
    (each channel owns one row per position). Channels whose BN outputs zero contribute nothing, so removing
    exactly those must leave the embedding unchanged; a wrong row or axis would not."""
    from edgeface.training.compress.channels import channel_groups, channel_importance
    from edgeface.training.compress.prune import structured_prune
    from edgeface.training.models import build_model

    tf_setup.tf.keras.utils.set_random_seed(0)
    model = build_model("vgg16", input_size=64, embedding_size=16, width=0.25)
    groups = channel_groups(model)
    assert len(groups) == 13 and groups[-1].consumer == "embedding_dense" and groups[-1].spatial == 4
    rng = np.random.default_rng(0)
    for layer in model.layers:  # trained-looking BN statistics, so the check is not trivially about zeros
        if isinstance(layer, tf_setup.keras.layers.BatchNormalization) and layer.name != "embedding":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    for g in groups:  # silence the half of each group the ranking will drop (the smallest |gamma|)
        if g.channels >= 16:
            bn = model.get_layer(g.channelwise[0])
            gamma, beta, mean, var = bn.get_weights()
            drop = np.argsort(-channel_importance(model, g))[g.channels // 2 :]
            gamma[drop], beta[drop] = 0.0, 0.0
            bn.set_weights([gamma, beta, mean, var])
    x = rng.normal(size=(3, 64, 64, 3)).astype(np.float32)
    thin, report = structured_prune(model, 0.5, None)
    assert all(r["kept"] == r["channels"] // 2 for r in report if r.get("channels", 0) >= 16)
    assert np.allclose(model(x, training=False).numpy(), thin(x, training=False).numpy(), atol=1e-4)
    from edgeface.training.models.registry import count_flops

    assert count_flops(thin) < 0.35 * count_flops(model)


def test_without_batchnorm_channels_are_ranked_by_what_they_write_times_what_reads_them():
    """dlib's port has no BN: a channel's filter can be any size when nothing reads it. Give the half that the
    consumer ignores the largest filters (a filter-norm ranking keeps exactly those): the product ranking drops
    them, so halving the group is exact, and rescaling a channel across the ReLU (same function) leaves the
    ranking as it was."""
    from edgeface.training.compress.channels import channel_groups, channel_importance
    from edgeface.training.compress.prune import structured_prune

    keras = tf_setup.keras
    tf_setup.tf.keras.utils.set_random_seed(0)
    x = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(8, 3, padding="same", name="stem")(x)
    y = keras.layers.Conv2D(16, 3, padding="same", name="inner")(keras.layers.ReLU()(y))
    y = keras.layers.Conv2D(8, 3, padding="same", name="outer")(keras.layers.ReLU()(y))
    model = keras.Model(x, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(y)))
    group = next(g for g in channel_groups(model) if g.producer == "inner")
    ignored = np.arange(0, 16, 2)
    kernel, bias = model.get_layer("inner").get_weights()
    kernel[..., ignored] *= 10
    model.get_layer("inner").set_weights([kernel, bias])
    reads, read_bias = model.get_layer("outer").get_weights()
    reads[:, :, ignored, :] = 0
    model.get_layer("outer").set_weights([reads, read_bias])
    assert set(np.argsort(-channel_importance(model, group))[8:]) == set(ignored)
    images = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    thin, _ = structured_prune(model, 0.5, None)
    assert thin.get_layer("inner").filters == 8
    assert np.allclose(model(images).numpy(), thin(images).numpy(), atol=1e-5)

    before = channel_importance(model, group)
    scale = np.linspace(0.2, 5, 16).astype(np.float32)
    model.get_layer("inner").set_weights([kernel * scale, bias * scale])
    model.get_layer("outer").set_weights([reads / scale[None, None, :, None], read_bias])
    assert np.allclose(channel_importance(model, group), before, rtol=1e-4)


def test_a_teacher_whose_embeddings_crowd_one_direction_is_distilled_centred(setup):
    """dlib-like space: every embedding shares one large component. The face set notices (mean cosine over 0.5) and
    centres: the teacher itself still scores zero loss, and a student that misses by a little is charged for it
    several times over, where the plain cosine barely sees the miss."""
    from edgeface.training.compress.finetune import FaceSet
    from edgeface.training.train.distill import ANISOTROPIC, distillation_loss

    keras, tf = tf_setup.keras, tf_setup.tf
    model, _, faces_dir, _ = setup
    plain_set = FaceSet([faces_dir], model, limit=48)
    assert (plain_set.centre is not None) == (float(np.mean(plain_set.targets @ plain_set.targets.T)) > ANISOTROPIC)
    raw = model.predict(plain_set.inputs(plain_set.faces), verbose=0)
    spread = float(np.abs(raw).mean())
    x = keras.Input(model.inputs[0].shape[1:])
    crowded = keras.Model(x, keras.layers.Lambda(lambda e: e + 3 * spread)(model(x)))  # one shared component
    faces = FaceSet([faces_dir], crowded, limit=48)
    assert float(np.mean(faces.targets @ faces.targets.T)) > ANISOTROPIC and faces.centre is not None
    assert np.allclose(np.linalg.norm(faces.training_targets(), axis=1), 1, atol=1e-5)
    teacher_out = raw + 3 * spread
    centred, plain = distillation_loss(1.0, faces.centre), distillation_loss(1.0)
    y_true = tf.constant(faces.training_targets(), tf.float32)
    assert float(tf.reduce_max(centred(y_true, teacher_out))) < 1e-4
    noisy = teacher_out + np.random.default_rng(0).normal(0, 0.3 * spread, raw.shape).astype(np.float32)
    charged = float(tf.reduce_mean(centred(y_true, noisy)))
    seen = float(tf.reduce_mean(plain(tf.constant(faces.targets, tf.float32), noisy)))
    assert charged > 3 * seen > 0


def test_gradual_structured_pruning_reaches_the_same_width_in_steps(setup):
    """Two prune + fine-tune steps (relation loss on) end at the channel counts of one step, with FLOPs falling
    at each step and the curve reporting how close each step stays to the original."""
    from edgeface.training.compress.prune import structured_prune
    from edgeface.training.models.registry import count_flops

    model, _, _, faces = setup
    once, once_report = structured_prune(model, 0.5, None)
    gradual, report = structured_prune(model, 0.5, faces, epochs=1, batch=16, steps=2, relation_weight=1.0,
                                       on_step=lambda k, m: {"params": m.count_params()})
    curve = [r for r in report if "step" in r]
    assert [r["step"] for r in curve] == [1, 2]
    assert count_flops(model) > curve[0]["flops"] > curve[1]["flops"] == count_flops(gradual) == count_flops(once)
    assert all(-1 <= r["agreement"] <= 1 + 1e-5 and r["loss"] > 0 for r in curve), curve
    assert curve[0]["params"] > curve[1]["params"] == gradual.count_params()
    assert [r["kept"] for r in report if "group" in r] == [r["kept"] for r in once_report if "group" in r]


def test_sensitivity_sees_a_group_whose_dropped_half_carries_nothing(setup):
    """Silence the half of one group that the ranking drops (BN gamma and beta 0): thinning that group to half
    must do no damage, while halving an untouched group does some. A sensitivity that measured anything but the
    embedding (or thinned the wrong channels) would not tell them apart."""
    from edgeface.training.compress.allocate import sensitivity
    from edgeface.training.compress.channels import channel_groups, channel_importance
    from edgeface.training.compress.finetune import FaceSet
    from edgeface.training.models import build_model

    model, _, faces_dir, _ = setup
    quiet = build_model("mobilefacenet", width=0.25, embedding_size=32)
    quiet.set_weights(model.get_weights())
    groups = [g for g in channel_groups(quiet) if g.channels >= 16]
    silent, loud = groups[1], groups[2]
    bn = quiet.get_layer(silent.channelwise[0])
    gamma, beta, mean, var = bn.get_weights()
    drop = np.argsort(-channel_importance(quiet, silent))[silent.channels // 2 :]
    gamma[drop], beta[drop] = 0.0, 0.0
    bn.set_weights([gamma, beta, mean, var])
    rows = {r["group"]: r for r in sensitivity(quiet, [silent, loud], FaceSet([faces_dir], quiet, limit=32))}
    assert abs(rows[silent.producer]["damage"][0.5]) < 1e-5
    assert rows[loud.producer]["damage"][0.5] > 1e-3
    assert rows[loud.producer]["damage"][0.25] > rows[loud.producer]["damage"][0.75]
    # each group's per-channel cost from layer shapes is what the profiler counts on the thinner model built
    from edgeface.training.compress.channels import remove_channels
    from edgeface.training.models.registry import count_flops

    base, whole = count_flops(quiet), {g.producer: g.channels for g in channel_groups(quiet)}
    for g in (silent, loud):
        thin = remove_channels(quiet, channel_groups(quiet), {**whole, g.producer: g.channels // 2})
        assert rows[g.producer]["flops_per_channel"] == (base - count_flops(thin)) / (g.channels // 2)


def test_greedy_allocation_spends_the_budget_where_damage_per_flop_is_least():
    """Two groups of equal cost: the harmless one goes down to its floor before the harmful one loses a channel;
    a budget beyond every floor is refused in one line."""
    from edgeface.errors import EdgefaceError
    from edgeface.training.compress.allocate import greedy_counts

    def row(name: str, harm: float) -> dict:
        return {"group": name, "channels": 64, "flops_per_channel": 1000.0,
                "damage": {1.0: 0.0, 0.75: harm, 0.5: 2 * harm, 0.25: 4 * harm}}

    rows = [row("harmful", 0.3), row("harmless", 0.01)]
    assert greedy_counts(rows, 16 * 1000) == {"harmful": 64, "harmless": 48}
    assert greedy_counts(rows, 56 * 1000) == {"harmful": 56, "harmless": 16}
    with pytest.raises(EdgefaceError, match="25%"):
        greedy_counts(rows, 128 * 1000)


def test_a_consumer_that_ignores_channels_computes_what_the_thinner_model_does(setup):
    """``without_inputs``: zeroing the consumer's inputs from the channels a thinner model would drop gives that
    model's embeddings, which is what lets the allocator measure damage without building a model per probe."""
    from edgeface.training.compress.channels import by_importance, channel_groups, remove_channels, without_inputs

    model, _, _, faces = setup
    groups = channel_groups(model)
    whole = {g.producer: g.channels for g in groups}
    for g in [g for g in groups if g.channels >= 16][::4]:
        thin = remove_channels(model, groups, {**whole, g.producer: 8})
        masked = tf_setup.keras.Model.from_config(model.get_config())
        masked.set_weights(model.get_weights())
        consumer = masked.get_layer(g.consumer)
        consumer.set_weights(without_inputs(consumer.get_weights(), g, by_importance(model, g)[8:]))
        assert np.abs(faces.embed(thin, limit=16) - faces.embed(masked, limit=16)).max() < 1e-5, g
        assert np.abs(faces.embed(thin, limit=16) - faces.embed(model, limit=16)).max() > 1e-3  # it did change


def test_structured_pruning_to_a_flops_budget(setup, tmp_path):
    """``--flops``: the model loses at least the asked share of FLOPs (and not far more), the channel counts
    differ between groups, the report carries each group's measured damage, and the CLI says so in its JSON."""
    from edgeface.training.compress.prune import structured_prune
    from edgeface.training.models.registry import count_flops

    model, path, faces_dir, faces = setup
    thin, report = structured_prune(model, 0.5, faces, epochs=0.5, batch=16, steps=2, flops=0.4)
    removed = 1 - count_flops(thin) / count_flops(model)
    assert 0.4 <= removed < 0.5, removed
    groups = [r for r in report if "group" in r]
    assert len({r["kept"] / r["channels"] for r in groups}) > 1
    assert all(r["damage"]["1.00"] == 0.0 for r in groups if r["channels"] >= 16)
    out = run_cli("prune", str(path), "-o", str(tmp_path / "p.keras"), "--structured", "--flops", "0.4",
                  "--data", str(faces_dir), "--faces", "32", "--epochs", "0.2", "--json", block_tf=False)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["step"]["flops"] == 0.4 and 1 - doc["flops_after"] / doc["flops_before"] >= 0.4
    assert_one_line_error(run_cli("prune", str(path), "-o", str(tmp_path / "q.keras"), "--structured", "--flops",
                                  "0.4", block_tf=False), "give --data")
    assert_one_line_error(run_cli("prune", str(path), "-o", str(tmp_path / "q.keras"), "--structured", "--flops",
                                  "1.5", "--data", str(faces_dir), "--faces", "16", block_tf=False),
                          "--flops must be between 0 and 1")
    assert not (tmp_path / "q.keras").exists()
