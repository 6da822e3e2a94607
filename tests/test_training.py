"""Training half on tiny models and a handful of real aligned faces (ORL): train, distill, resume, export."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, needs_shared, prepared_orl, run_cli

pytestmark = [needs_shared, pytest.mark.slow]  # TensorFlow training: minutes (make test-fast skips them)
tf_setup = pytest.importorskip("edgeface.training.tf_setup")


@pytest.fixture(scope="session")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ORL: 6 people x 10 photos, detected and aligned by edgeface itself."""
    return prepared_orl(tmp_path_factory.mktemp("orl"))


def pair_gap(embed, faces: Path) -> float:
    """Mean same-person cosine minus mean different-person cosine of the prepared faces."""
    from edgeface.training.train.dataset import encode_labels, prepared_faces
    from edgeface.vision.image import read_image

    paths, ids = prepared_faces([faces])
    labels, _ = encode_labels(ids)
    emb = embed(np.stack([read_image(p) for p in paths]))
    sim = emb @ emb.T
    same = labels[:, None] == labels[None]
    off = ~np.eye(len(labels), dtype=bool)
    return float(sim[same & off].mean() - sim[~same].mean())


def test_train_lowers_loss_pulls_same_person_together_and_resumes(faces, tmp_path):
    from edgeface.training.models import build_model
    from edgeface.training.train.keras_embedder import KerasEmbedder
    from edgeface.training.train.loop import TrainConfig
    from edgeface.training.train.train import train

    tf_setup.tf.keras.utils.set_random_seed(0)
    before = pair_gap(KerasEmbedder(build_model("tiny", embedding_size=32)).embed, faces)
    config = TrainConfig(arch="tiny", out=tmp_path / "run", epochs=25, batch=16, lr=5e-3, embedding_size=32)
    summary = train([faces], config, head="arcface", margin=0.2, scale=16)
    loss = summary["history"]["loss"]
    assert loss[-1] < loss[0]
    after = pair_gap(KerasEmbedder(tmp_path / "run" / "model.keras").embed, faces)
    assert after > before + 0.05, (before, after)
    manifest = json.loads((tmp_path / "run" / "model.keras.json").read_text())
    assert manifest["architecture"] == "tiny" and manifest["chain"][0]["head"] == "arcface"
    # resume: the checkpoint continues where the optimiser stopped
    config.resume, config.epochs = True, 26

    class LateScore(tf_setup.keras.callbacks.Callback):  # like a validation score logged every N epochs only
        def on_epoch_end(self, epoch, logs=None):
            logs["late_score"] = 0.5

    resumed = train([faces], config, head="arcface", margin=0.2, scale=16, callbacks=[LateScore()])
    assert resumed["epochs_run"] == 1
    with open(tmp_path / "run" / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == list(range(26))
    assert rows[0]["late_score"] == "" and float(rows[-1]["late_score"]) == 0.5 and float(rows[-1]["loss"]) > 0


def test_distill_from_a_tflite_teacher_reduces_the_loss(faces, tmp_path):
    from edgeface.training.export import export
    from edgeface.training.models import build_model
    from edgeface.training.train.distill import distill
    from edgeface.training.train.loop import TrainConfig

    tf_setup.tf.keras.utils.set_random_seed(1)
    teacher, _ = export(build_model("tiny", embedding_size=24, width=2.0), tmp_path / "teacher.tflite")
    config = TrainConfig(arch="tiny", out=tmp_path / "student", epochs=15, batch=16, lr=5e-3)
    summary = distill([faces], str(teacher), config, workers=1, relation_weight=1.0)
    loss = summary["history"]["loss"]
    assert loss[-1] < loss[0] - 0.05, loss
    assert summary["faces"] >= 55
    assert json.loads((tmp_path / "student" / "model.keras.json").read_text())["embedding_size"] == 24
    # --resume compiles the checkpoint again with the run's loss (a closure over its weights, which Keras cannot
    # rebuild from the file by itself) and carries on from the optimiser's step
    config.resume, config.epochs = True, 16
    resumed = distill([faces], str(teacher), config, workers=1, relation_weight=1.0)
    assert resumed["epochs_run"] == 1 and resumed["history"]["loss"][0] < loss[0] - 0.05, resumed["history"]


def test_clean_targets_teach_each_harsh_view_the_teachers_embedding_of_its_clean_face(faces, tmp_path):
    """``distill --clean-targets``: a view's target is the teacher's reading of the clean face it was made from (the
    teacher never looks at the damage), so the student learns to see through the light."""
    from edgeface.data.prepare import MANIFEST, read_manifest
    from edgeface.data.views import make_views
    from edgeface.training.export import export
    from edgeface.training.models import build_model
    from edgeface.training.train.dataset import clean_faces, prepared_faces
    from edgeface.training.train.distill import distill
    from edgeface.training.train.loop import TrainConfig
    from edgeface.training.train.targets import teacher_targets

    views = tmp_path / "views"
    made = make_views(faces, views, per_face=1, workers=1, kind="harsh")
    assert made["kind"] == "harsh" and set(made["conditions_drawn"]) <= {"shadow", "dark", "nir"}
    paths, _ = prepared_faces([faces, views])
    keys, folders = clean_faces([faces, views])
    assert folders == [faces.resolve()] and len(keys) == len(paths) == 2 * made["faces"]
    records = read_manifest(views)
    assert keys[made["faces"]:] == [str(faces.resolve() / r["of"]) for r in records]
    teacher, _ = export(build_model("tiny", embedding_size=16), tmp_path / "teacher.tflite")
    clean = teacher_targets(folders, str(teacher), workers=1)
    damaged = teacher_targets([views], str(teacher), workers=1)
    first = records[0]
    # the teacher reads the damage differently: what a view would learn without --clean-targets
    assert float(clean[keys[made["faces"]]] @ damaged[str(views / first["file"])]) < 0.999
    config = TrainConfig(arch="tiny", out=tmp_path / "student", epochs=1, batch=16, lr=1e-3)
    summary = distill([views], str(teacher), config, workers=1, clean_targets=True)
    assert summary["views_taught_their_clean_face"] == made["faces"]
    # views made by an edgeface that did not record their clean folder are refused, not taught their own reading
    old = [{k: v for k, v in r.items() if k != "of_root"} for r in records]
    (views / MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in old))
    with pytest.raises(Exception, match="make the views again"):
        clean_faces([views])


def test_relation_loss_is_zero_only_when_the_similarities_match():
    from edgeface.training.train.distill import relation_loss

    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(16, 8)).astype(np.float32)
    teacher /= np.linalg.norm(teacher, axis=1, keepdims=True)
    rotation = np.linalg.qr(rng.normal(size=(8, 8)))[0].astype(np.float32)
    # a rotated, rescaled student keeps every relation: no loss, though its cosine to each target is poor
    assert float(np.max(relation_loss(teacher, 3.0 * teacher @ rotation))) < 1e-10
    shuffled = teacher[rng.permutation(16)]
    assert float(np.mean(relation_loss(teacher, shuffled))) > 0.05
    # --tail-weight: two strangers pulled together cost more than the same error pushing them apart
    def pair(cos: float) -> np.ndarray:  # two unit faces at this cosine
        return np.array([[1, 0, 0], [cos, np.sqrt(1 - cos * cos), 0]], np.float32)

    plain = [float(np.sum(relation_loss(pair(0.5), pair(c)))) for c in (0.7, 0.3)]
    tail = [float(np.sum(relation_loss(pair(0.5), pair(c), tail_weight=4.0))) for c in (0.7, 0.3)]
    assert plain[0] == pytest.approx(plain[1], rel=1e-4)  # the symmetric loss cannot tell the two errors apart
    assert tail[1] == pytest.approx(plain[1], rel=1e-5)  # pushed apart: the tail term does not see it
    assert tail[0] == pytest.approx(5 * plain[0], rel=1e-4)  # pulled together: counted 1 + 4 times


def test_distill_with_identities_then_warm_start(faces, tmp_path):
    """ArcFace on the labelled faces beside distillation; a second run starts from the first one's weights."""
    from edgeface.training.export import export
    from edgeface.training.models import build_model
    from edgeface.training.train.distill import distill
    from edgeface.training.train.keras_io import load_keras
    from edgeface.training.train.loop import TrainConfig, warm_start
    from edgeface.training.train.train import with_margin_head

    tf_setup.tf.keras.utils.set_random_seed(2)
    teacher, _ = export(build_model("tiny", embedding_size=24, width=2.0), tmp_path / "teacher.tflite")
    config = TrainConfig(arch="tiny", out=tmp_path / "first", epochs=12, batch=16, lr=5e-3)
    first = distill([faces], str(teacher), config, workers=1, identity_weight=0.1, margin=0.2, scale=16,
                    relation_weight=1.0)
    history = first["history"]
    assert history["head_loss"][-1] < history["head_loss"][0] - 0.5, history["head_loss"]
    assert history["backbone_loss"][-1] < history["backbone_loss"][0], history["backbone_loss"]
    assert first["identities"] == 6 and first["labelled_faces"] == first["faces"]
    assert "1.0 x batch relation" in first["loss"]
    # warm start, one epoch at a rate too low to move far: from no init, from the embedding network (model.keras,
    # no head) and from the training checkpoint (backbone and ArcFace head)
    runs = {}
    for name in (None, "model.keras", "checkpoint.keras"):
        config = TrainConfig(arch="tiny", out=tmp_path / str(name), epochs=1, batch=16, lr=1e-4,
                             init=name and tmp_path / "first" / name)
        runs[name] = distill([faces], str(teacher), config, workers=1, identity_weight=0.1, margin=0.2, scale=16,
                             relation_weight=1.0)["history"]
    distance = {k: v["backbone_loss"][0] for k, v in runs.items()}
    # a warm start keeps the history of the weights it started from: the first run's step, then its own
    from edgeface.manifest import load_manifest

    first_chain = load_manifest(tmp_path / "first" / "model.keras").chain
    chain = load_manifest(tmp_path / "model.keras" / "model.keras").chain
    assert chain[:-1] == first_chain and chain[-1]["init"].endswith("first/model.keras"), chain
    assert len(load_manifest(tmp_path / "None" / "model.keras").chain) == len(first_chain)
    # the embedding starts near where the first run ended, far below a fresh one, from either file
    assert distance["model.keras"] < distance[None] - 0.05 and distance["checkpoint.keras"] < distance[None] - 0.05
    assert abs(distance["model.keras"] - history["backbone_loss"][-1]) < 0.1, (distance, history)
    # only the checkpoint hands on the head, weight for weight (a fresh head's first loss is a draw of its random
    # class centres: 2.4 or 6.7 on two draws here, so the loss cannot tell)
    trained = load_keras(tmp_path / "first" / "checkpoint.keras").get_layer("head").get_weights()
    for name, carried in (("checkpoint.keras", True), ("model.keras", False)):
        model = with_margin_head(build_model("tiny", embedding_size=24), 6, "arcface", 16, 0.2, keep_embedding=True)
        assert warm_start(model, tmp_path / "first" / name, lambda: None) is carried
        same = [np.array_equal(a, b) for a, b in zip(model.get_layer("head").get_weights(), trained, strict=True)]
        assert all(same) if carried else not any(same)
    model = str(tmp_path / "first" / "model.keras")
    for extra, needle in ((("--width", "2.0"), "do not match"), (("--resume",), "pick one")):
        args = ("distill", str(faces), "--teacher", str(teacher), "--arch", "tiny", "--init", model,
                "--out", str(tmp_path / "second"), "--batch", "16", *extra)
        assert_one_line_error(run_cli(*args, block_tf=False), needle)


def test_export_modes_match_keras_and_manifest_round_trips(faces, tmp_path):
    from edgeface.manifest import Manifest, load_manifest
    from edgeface.training.export import calibration_faces, export
    from edgeface.training.models import build_model
    from edgeface.training.train.keras_embedder import KerasEmbedder
    from edgeface.vision.embed import TFLiteEmbedder

    model = build_model("tiny", embedding_size=32)
    calib = calibration_faces([faces], 40)
    reference = KerasEmbedder(model).embed(calib[:8])
    tolerance = {"float32": 1e-4, "float16": 1e-3, "dynamic": 0.02, "int8": 0.05}
    for mode, tol in tolerance.items():
        path, manifest = export(model, tmp_path / f"m-{mode}.tflite", mode, calib)
        got = TFLiteEmbedder(path).embed(calib[:8])
        assert (1 - np.sum(got * reference, 1)).max() < tol, mode
        loaded = load_manifest(path)
        assert loaded == Manifest.from_dict(manifest.to_dict())
        assert loaded.dtype == mode and loaded.embedding_size == 32 and loaded.input.mean == 127.5
    assert load_manifest(tmp_path / "m-int8.tflite").quantization["input"]["dtype"] == "int8"


def test_a_flip_averaged_export_embeds_the_face_and_its_mirror_in_one_file(faces, tmp_path):
    """`export --flip`: the file's embedding is the sum of the model's embeddings of the face and of its mirror,
    in float32 and int8 alike, with one copy of the weights, twice the FLOPs in the manifest and the flip in its
    chain."""
    from edgeface.training.export import calibration_faces
    from edgeface.training.models import build_model
    from edgeface.training.train.keras_embedder import KerasEmbedder
    from edgeface.training.train.keras_io import save_keras
    from edgeface.vision.embed import TFLiteEmbedder, l2_normalise

    tf_setup.tf.keras.utils.set_random_seed(0)
    model = build_model("tiny", embedding_size=32)
    model_path = save_keras(model, tmp_path / "m.keras")
    files = {}
    for mode, flip in (("float32", False), ("float32", True), ("int8", False), ("int8", True)):
        out = tmp_path / f"{mode}-{flip}.tflite"
        result = run_cli("export", str(model_path), "-o", str(out), "--quantize", mode, "--calib-data", str(faces),
                         "--calib", "40", *(["--flip"] if flip else []), "--json", block_tf=False)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["flip"] is flip
        files[mode, flip] = out
    chips = calibration_faces([faces], 8, seed=1)
    keras = KerasEmbedder(model)
    raw = keras.forward(chips) + keras.forward(chips[:, :, ::-1])
    expected, single = l2_normalise(raw), keras.embed(chips)
    assert (1 - np.sum(expected * single, 1)).max() > 1e-3  # the mirror changes the embedding
    for mode, tol in (("float32", 1e-5), ("int8", 0.05)):
        inside = TFLiteEmbedder(files[mode, True]).embed(chips)
        assert (1 - np.sum(inside * expected, 1)).max() < tol, mode
        plain, flipped = (json.loads(files[mode, f].with_suffix(".json").read_text()) for f in (False, True))
        assert flipped["flops"] == 2 * plain["flops"] and flipped["chain"][-1]["flip"] is True
    grown = files["float32", True].stat().st_size - files["float32", False].stat().st_size
    assert grown < model.count_params()  # under a quarter of the float32 weights: one copy, two branches


def test_interrupted_export_leaves_the_old_file(tmp_path, monkeypatch):
    from edgeface.errors import EdgefaceError
    from edgeface.training import export as export_module
    from edgeface.training.models import build_model

    model = build_model("tiny")
    target = tmp_path / "model.tflite"
    export_module.export(model, target)
    old = target.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("edgeface.files.os.fsync", full_disk)
    with pytest.raises(EdgefaceError, match="No space left"):
        export_module.export(build_model("tiny", width=2.0), target)
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.tflite"]


def test_training_bad_input_gives_one_line_errors(faces, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    one = tmp_path / "one"
    one.mkdir()
    lines = [ln for ln in (faces / "manifest.jsonl").read_text().splitlines() if '"s1"' in ln]
    (one / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (one / "s1").symlink_to(faces / "s1")
    from edgeface.manifest import Manifest
    from edgeface.training.export import export
    from edgeface.training.models import build_model
    from edgeface.training.models.registry import INPUT_SPEC

    at96 = replace(INPUT_SPEC, size=96)
    # a teacher of another input size is welcome (each sees the chip at its own size); one made for another chip
    # is not: these faces are ArcFace crops, the teacher wants dlib's
    teacher, _ = export(build_model("tiny", input_size=96), tmp_path / "t96.tflite",
                        manifest=Manifest(input=at96, embedding_size=32, alignment="yunet-dlib150"))
    cases = [
        (("train", str(empty), "--arch", "tiny"), "no prepared faces"),
        (("train", str(one), "--arch", "tiny", "--batch", "4"), "at least 2 identities"),
        (("train", str(faces), "--arch", "resnet9000"), "unknown architecture"),
        (("distill", str(faces), "--teacher", str(teacher), "--arch", "tiny"), "made for yunet-dlib150 chips"),
        (("export", str(tmp_path / "missing.keras"), "-o", str(tmp_path / "x.tflite")), "not found"),
    ]
    for args, needle in cases:
        assert_one_line_error(run_cli(*args, block_tf=False), needle)
    from edgeface.training.train.distill import check_teacher

    other_size, _ = export(build_model("tiny", input_size=96), tmp_path / "t96-arcface.tflite",
                           manifest=Manifest(input=at96, embedding_size=32, alignment="yunet-5pt"))
    check_teacher(str(other_size), "yunet-5pt")  # 96 px teacher, 112 px student, one chip: accepted


def test_keras_model_and_its_export_keep_separate_manifests(tmp_path):
    """model.keras and model.tflite in one folder: model.keras.json and model.json, neither overwrites the other."""
    from edgeface.manifest import Manifest, load_manifest
    from edgeface.training.export import export
    from edgeface.training.models import build_model
    from edgeface.training.models.registry import INPUT_SPEC
    from edgeface.training.train.keras_io import save_keras

    keras_path = save_keras(build_model("tiny"), tmp_path / "model.keras",
                            Manifest(input=INPUT_SPEC, embedding_size=32, architecture="tiny"))
    tflite, _ = export(keras_path, tmp_path / "model.tflite")
    assert load_manifest(keras_path).architecture == "tiny"  # still matches model.keras (sha checked)
    assert load_manifest(tflite).chain[-1]["step"] == "export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.keras", "model.keras.json",
                                                          "model.tflite"]


def test_warm_start_from_a_float_tflite_computes_what_the_file_computes(faces, tmp_path):
    """--init FILE.tflite: kernels back from the folded graph, BN unfolded on real faces, so the Keras model equals
    the file in inference and stays close to it in training mode (batch statistics) on faces."""
    from edgeface.training.export import calibration_faces, export
    from edgeface.training.models import build_model
    from edgeface.training.models.registry import INPUT_SPEC
    from edgeface.training.train.from_tflite import load_tflite_weights
    from edgeface.training.train.keras_embedder import KerasEmbedder
    from edgeface.vision.embed import TFLiteEmbedder, preprocess

    tf_setup.tf.keras.utils.set_random_seed(3)
    source = build_model("mobilefacenet", embedding_size=32, width=0.25)
    rng = np.random.default_rng(0)
    for layer in source.layers:  # trained-looking BN: folding must carry scales and shifts, not identities
        if isinstance(layer, tf_setup.keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.2, b.shape), rng.normal(0, 0.2, m.shape),
                               rng.uniform(0.5, 2.0, v.shape)])
    calib = calibration_faces([faces], 60)
    path, _ = export(source, tmp_path / "source.tflite", "float32")
    target = build_model("mobilefacenet", embedding_size=32, width=0.25)
    x = preprocess(calib, INPUT_SPEC)
    load_tflite_weights(target, path, x)
    expected = TFLiteEmbedder(path).embed(calib)
    got = KerasEmbedder(target).embed(calib)
    assert (1 - np.sum(got * expected, 1)).max() < 1e-4
    training = target(x, training=True).numpy()
    training /= np.linalg.norm(training, axis=1, keepdims=True)
    assert np.median(np.sum(training * expected, 1)) > 0.9
    # another width is refused with its reason
    other = build_model("mobilefacenet", embedding_size=32, width=0.5)
    with pytest.raises(Exception, match="another width"):
        load_tflite_weights(other, path, x)
