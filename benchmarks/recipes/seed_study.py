"""The seed article's question, on a baseline worth pruning: does pruning a well-trained VGG16 face classifier keep
(or improve) its accuracy, and how do distillation, quantization and low-rank compare?

  1. split   all labelled faces (CelebA subset, ORL, LFW people outside pairs.txt; YuNet crops) into training
             photos and held-out photos of the same people (20 % of each identity with 3+ photos, seeded);
  2. width   time a few training steps at width 0.5 and 0.25 and take the widest whose run fits --budget-min;
  3. train   the VGG16 (softmax head, augmentation, AdamW weight decay, warm-up + cosine schedule), with the
             train and held-out identification curve every --val-every epochs. With --views, the damaged views
             of the training photos (never of a held-out one) join its training set; with --teacher, it also
             learns a teacher's embeddings of every photo (cosine + relation loss, ArcFace head on the labels):
             391 people alone let a plain classifier memorise (93 % train, 61.5 % held-out after 30 epochs);
  4. vary    every compression variant x --seeds: each is fine-tuned on the labels for --finetune-epochs (the
             control is the unpruned model fine-tuned identically with the same seed, so differences are paired),
             exported to .tflite and scored from that file: identification top-1 (held-out photos against the
             mean embedding of each identity's training photos), LFW View 2, size, FLOPs, p50 latency;
  5. report  mean +- SD over seeds (LFW on the first --lfw-seeds, with its 10-fold standard error), and for
             each variant minus the control at the same seeds: the per-seed difference (mean +- SD), a paired
             bootstrap 95 % CI and a sign-flip permutation p-value over held-out photos (seeds of a photo together).

Every stage caches its output under --work, so an interrupted run resumes.  -> results/<--name>.json and .md

    python benchmarks/recipes/seed_study.py --width 0.25 --epochs 30 --seeds 3 --name seed_study_softmax  (plain)
    python benchmarks/recipes/seed_study.py --work ~/.cache/edgeface/seed-study-kd --width 0.25 --epochs 12 \
        --val-every 3 --views ~/.cache/edgeface/views-yunet --teacher ~/.cache/edgeface/stage3/edgeface-float32.tflite
    python benchmarks/recipes/seed_study.py --work ~/.cache/edgeface/seed-study-kd2 --width 0.25 --epochs 12 --lr 1e-3 \
        --val-every 3 --views ~/.cache/edgeface/views-yunet --teacher ~/.cache/edgeface/stage3/edgeface-float32.tflite \
        --init ~/.cache/edgeface/seed-study-kd/baseline/checkpoint.keras    (12 more epochs, a second cosine cycle)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import LFW, PAIRS, RESULTS, save

from edgeface.data.prepare import MANIFEST, read_manifest
from edgeface.evaluate.metrics import identification_top1
from edgeface.files import write_json

HOME = Path.home() / ".cache" / "edgeface"
LABELLED = ("celeba", "orl", "lfw-outside-pairs")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_prepared(folder: Path, records: list[dict]) -> Path:
    """A prepared folder made of records whose files live elsewhere (absolute paths): just its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def split(prepared: Path, work: Path, held_out: float = 0.2, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Training and held-out records (absolute paths); the training ones also as a prepared folder to train on."""
    if (work / "split.json").exists():
        cached = json.loads((work / "split.json").read_text())
        return cached["train"], cached["test"]
    rng = np.random.default_rng(seed)
    by_id: dict[str, list[dict]] = {}
    for name in LABELLED:
        for r in read_manifest(prepared / name):
            if r.get("status") == "ok" and r.get("identity"):
                by_id.setdefault(f"{name}/{r['identity']}", []).append(
                    {**r, "identity": f"{name}/{r['identity']}", "file": str(prepared / name / r["file"])})
    train, test = [], []
    for records in by_id.values():
        if len(records) < 2:
            continue  # one photo teaches the classifier nothing it can be tested on
        order = rng.permutation(len(records))
        n_test = max(1, round(held_out * len(records))) if len(records) >= 3 else 0
        test += [records[i] for i in order[:n_test]]
        train += [records[i] for i in order[n_test:]]
    write_prepared(work / "train-photos", train)
    write_json(work / "split.json", {"train": train, "test": test})
    return train, test


def same_split_as(init: Path, work: Path) -> None:
    """A baseline continued from ``<earlier work>/baseline/checkpoint.keras`` must keep that run's people, split and
    views (its head's classes are those people): copy them into the new --work unless it has a split already."""
    earlier = init.parent.parent
    if (work / "split.json").exists():
        return
    if not (earlier / "split.json").exists():
        raise SystemExit(f"--init {init}: no split.json in {earlier}; pass a checkpoint from a seed-study --work")
    work.mkdir(parents=True, exist_ok=True)
    for name in ("train-photos", "train-views"):
        if (earlier / name).is_dir():
            shutil.copytree(earlier / name, work / name)
    shutil.copy2(earlier / "split.json", work / "split.json")  # last: its presence means the copy is complete


def training_views(views: Path, prepared: Path, train: list[dict], work: Path) -> Path:
    """The damaged views (grey, relit, low-res, blurred ...) of the training photos only, as a prepared folder:
    a view of a held-out photo would leak that photo into training."""
    folder = work / "train-views"
    if (folder / MANIFEST).exists():
        return folder
    wanted = {r["file"] for r in train}
    records = []
    for name in LABELLED:
        for r in read_manifest(views / name):
            if r.get("status") == "ok" and r.get("identity") and str(prepared / name / r["of"]) in wanted:
                records.append({**r, "identity": f"{name}/{r['identity']}", "file": str(views / name / r["file"])})
    return write_prepared(folder, records)


def load_faces(records: list[dict]) -> np.ndarray:
    from edgeface.vision.image import read_image

    return np.stack([read_image(r["file"]) for r in records])


def keras_embed(model, faces: np.ndarray) -> np.ndarray:
    from edgeface.training.models.registry import INPUT_SPEC
    from edgeface.training.train.keras_embedder import embed_in_batches

    return embed_in_batches(model, faces, INPUT_SPEC)


def identify(embed, gallery_faces: np.ndarray, gallery_ids: np.ndarray, test_faces: np.ndarray,
             test_ids: np.ndarray, probe: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-photo correctness of the held-out photos and of the training photos (``probe``: a sample of them), both
    against the mean embedding of each person's training photos; ``embed`` maps aligned faces to embeddings."""
    gallery = embed(gallery_faces)
    seen = np.arange(len(gallery)) if probe is None else probe
    return (identification_top1(gallery, gallery_ids, embed(test_faces), test_ids),
            identification_top1(gallery, gallery_ids, gallery[seen], gallery_ids[seen]))


def identification_callback(train: list[dict], test: list[dict], every: int, epochs: int, sample: int = 1500):
    """Keras callback: top-1 of held-out photos and of (a sample of) training photos, both against the class
    means of the training photos, un-augmented; the difference is the train/val gap."""
    from edgeface.training.tf_setup import keras
    from edgeface.training.train.loop import embedding_part

    rng = np.random.default_rng(0)
    gallery_faces, test_faces = load_faces(train), load_faces(test)
    gallery_ids = np.array([r["identity"] for r in train])
    test_ids = np.array([r["identity"] for r in test])
    probe = rng.choice(len(train), size=min(sample, len(train)), replace=False)

    class Identification(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if (epoch + 1) % every and epoch + 1 != epochs:
                return
            net = embedding_part(self.model)
            held, seen = (float(c.mean()) for c in identify(lambda f: keras_embed(net, f), gallery_faces,
                                                             gallery_ids, test_faces, test_ids, probe))
            if logs is not None:
                logs["train_top1"], logs["val_top1"] = seen, held
            log(f"epoch {epoch + 1}: identification train {100 * seen:.1f} %, held-out {100 * held:.1f} %")

    return Identification()


def epoch_seconds(width: float, folder: Path, faces: int, batch: int, steps: int = 12) -> float:
    """Seconds per training epoch at this width, from timed steps after a warm-up (same data pipeline)."""
    from edgeface.training.models.registry import INPUT_SPEC, build_model
    from edgeface.training.tf_setup import keras, tf
    from edgeface.training.train.dataset import encode_labels, make_dataset, prepared_faces
    from edgeface.training.train.train import with_margin_head

    paths, ids = prepared_faces([folder])
    labels, names = encode_labels(ids)
    model = with_margin_head(build_model("vgg16", 112, 128, width), len(names), "arcface", 32.0, 0.3)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(True))
    ds = make_dataset(paths, labels, INPUT_SPEC, batch, training=True).map(lambda x, y: ((x, y), y)).repeat()
    model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)
    started = time.time()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    tf.keras.backend.clear_session()
    return (time.time() - started) / steps * (faces // batch)


def train_baseline(work: Path, train: list[dict], test: list[dict], args: argparse.Namespace) -> dict:
    from edgeface.training.train.distill import distill
    from edgeface.training.train.loop import TrainConfig
    from edgeface.training.train.train import train as train_classifier

    run = work / "baseline"
    if (run / "summary.json").exists():
        return json.loads((run / "summary.json").read_text())
    timing = {}
    width = args.width
    if width is None:
        for w in (0.5, 0.25):
            timing[w] = epoch_seconds(w, work / "train-photos", len(train), args.batch)
            minutes = timing[w] * args.epochs / 60
            log(f"width {w}: {timing[w]:.0f} s per epoch -> {args.epochs} epochs in {minutes:.0f} min")
            if timing[w] * args.epochs <= args.budget_min * 60:
                width = w
                break
        width = width or 0.25
    config = TrainConfig(arch="vgg16", out=run, width=width, epochs=args.epochs, batch=args.batch, lr=args.lr,
                         weight_decay=5e-4, warmup_epochs=1.0, seed=0, init=Path(args.init) if args.init else None)
    data = [work / "train-photos"]
    if args.views:
        data.append(training_views(Path(args.views), Path(args.prepared), train, work))
    callbacks = [identification_callback(train, test, args.val_every, args.epochs)]
    if args.teacher:
        summary = distill(data, args.teacher, config, identity_weight=args.identity_weight, relation_weight=1.0,
                          callbacks=callbacks)
    else:
        summary = train_classifier(data, config, head=args.head, margin=0.3, scale=32.0, callbacks=callbacks)
    summary["width"] = width
    summary["init"] = args.init
    summary["epoch_seconds_measured"] = {str(k): round(v, 1) for k, v in timing.items()}
    write_json(run / "summary.json", summary)
    return summary


# ---------------------------------------------------------------- variants: (name, what it needs) in run order
VARIANTS = ("control", "magnitude-30", "magnitude-50", "magnitude-70", "magnitude-90", "structured-25",
            "structured-50", "svd-0.9", "svd-0.7", "int8", "magnitude-50+int8", "distilled")
QUANTIZED_FROM = {"int8": "control", "magnitude-50+int8": "magnitude-50"}  # int8 variants: their float model


class Study:
    """The trained baseline (backbone + its classification head), the labelled training photos and the held-out
    photos, in memory for every variant."""

    def __init__(self, work: Path, train: list[dict], test: list[dict], args: argparse.Namespace) -> None:
        import edgeface.training.train.train  # noqa: F401  (registers the margin head for loading the checkpoint)
        from edgeface.manifest import load_manifest
        from edgeface.training.train.dataset import encode_labels, prepared_faces
        from edgeface.training.train.keras_io import load_keras

        self.work, self.args = work, args
        full = load_keras(work / "baseline" / "checkpoint.keras")
        self.backbone = full.get_layer("backbone")
        self.head = full.get_layer("head").get_weights()
        self.head_kind = full.get_layer("head").kind
        self.manifest = load_manifest(work / "baseline" / "model.keras", check_sha=False)
        self.paths, ids = prepared_faces([work / "train-photos"])
        self.labels, self.names = encode_labels(ids)
        self.train, self.test = train, test
        self.gallery_faces, self.test_faces = load_faces(train), load_faces(test)
        self.train_ids = np.array([r["identity"] for r in train])
        self.test_ids = np.array([r["identity"] for r in test])

    def fresh(self):
        from edgeface.training.tf_setup import keras

        copy = keras.models.clone_model(self.backbone)
        copy.set_weights(self.backbone.get_weights())
        return copy

    def finetune(self, backbone, seed: int, callbacks: list | None = None, epochs: int | None = None):
        """The baseline's own training objective (its head on the identity labels, augmentation,
        weight decay) at a low, cosine-decaying rate: the recipe the seed article fine-tunes pruned models with."""
        from edgeface.training.models.registry import INPUT_SPEC
        from edgeface.training.tf_setup import keras, tf
        from edgeface.training.train.dataset import make_dataset
        from edgeface.training.train.loop import schedule
        from edgeface.training.train.train import with_margin_head

        epochs = epochs or self.args.finetune_epochs
        tf.keras.utils.set_random_seed(seed)
        model = with_margin_head(backbone, len(self.names), self.head_kind, 32.0, 0.3)
        model.get_layer("head").set_weights(self.head)
        steps = len(self.paths) // self.args.batch
        ds = make_dataset(self.paths, self.labels, INPUT_SPEC, self.args.batch, training=True, seed=seed)
        model.compile(optimizer=keras.optimizers.AdamW(schedule(self.args.finetune_lr, steps * epochs, 0),
                                                       weight_decay=5e-4),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(ds.map(lambda x, y: ((x, y), y)).repeat(), epochs=epochs, steps_per_epoch=steps,
                  callbacks=callbacks or [], verbose=2)
        return backbone

    def distilled(self, seed: int):
        """A MobileFaceNet (width 0.75, our default's size) trained from scratch to reproduce the baseline's
        embeddings of the training photos: cosine + relation loss, for --kd-epochs at --kd-lr (its own rate: a student
        from scratch needs the from-scratch rate, whatever --lr a continued baseline used)."""
        from edgeface.training.models.registry import INPUT_SPEC, build_model
        from edgeface.training.tf_setup import keras, tf
        from edgeface.training.train.dataset import make_dataset
        from edgeface.training.train.distill import distillation_loss
        from edgeface.training.train.loop import schedule

        targets = keras_embed(self.backbone, self.gallery_faces)
        tf.keras.utils.set_random_seed(seed)
        student = build_model("mobilefacenet", 112, 128, 0.75)
        steps = len(self.train) // self.args.batch
        epochs = self.args.kd_epochs
        student.compile(optimizer=keras.optimizers.AdamW(schedule(self.args.kd_lr, steps * epochs, steps),
                                                         weight_decay=5e-4), loss=distillation_loss(1.0))
        ds = make_dataset([r["file"] for r in self.train], targets.astype(np.float32), INPUT_SPEC, self.args.batch,
                          training=True, seed=seed)
        student.fit(ds.repeat(), epochs=epochs, steps_per_epoch=steps, verbose=2)
        return student

    def build(self, variant: str, seed: int):
        """The Keras model of a variant at a seed (int8 variants return their float model: export quantizes)."""
        import tensorflow_model_optimization as tfmot

        from edgeface.training.compress.lowrank import lowrank
        from edgeface.training.compress.prune import prunable, structured_prune

        kind, _, level = variant.partition("-")
        if kind == "control":
            return self.finetune(self.fresh(), seed)
        if kind == "magnitude":
            steps = len(self.paths) // self.args.batch * self.args.finetune_epochs
            wrapped, callbacks = prunable(self.fresh(), int(level) / 100, steps)
            return tfmot.sparsity.keras.strip_pruning(self.finetune(wrapped, seed, callbacks))
        if kind == "structured":
            return self.finetune(structured_prune(self.fresh(), int(level) / 100, None)[0], seed)
        if kind == "svd":
            return self.finetune(lowrank(self.fresh(), None, energy=float(level))[0], seed)
        if kind == "distilled":
            return self.distilled(seed)
        raise ValueError(variant)

    def float_model(self, variant: str, seed: int):
        """Build a variant, or load it when an int8 variant has already built its float parent at this seed."""
        from edgeface.training.train.keras_io import load_keras, save_keras

        path = self.work / "models" / f"{variant}-s{seed}.keras"
        if path.exists():
            return load_keras(path)
        model = self.build(variant, seed)
        if variant in QUANTIZED_FROM.values():
            save_keras(model, path)
        return model

    def score(self, tflite: Path, lfw: bool = True) -> dict:
        """Identification (per held-out photo) and LFW View 2 (when ``lfw``), both from the exported file."""
        from edgeface.evaluate.lfw import evaluate_lfw
        from edgeface.vision.embed import TFLiteEmbedder

        embedder = TFLiteEmbedder(tflite, threads=2)  # both cores: the study is a batch job, not a latency test
        correct, seen = identify(embedder.embed, self.gallery_faces, self.train_ids, self.test_faces, self.test_ids)
        row = {"top1": float(correct.mean()), "train_top1": float(seen.mean()),
               "correct": "".join("1" if c else "0" for c in correct)}
        if lfw:
            report = evaluate_lfw(embedder, self.args.lfw_dir, self.args.pairs)
            row.update({"lfw": report["accuracy"], "lfw_se": report["accuracy_se"], "auc": report["roc_auc"],
                        "tar_1e-3": report["tar_at_far"]["0.001"]})
        return row

    def run(self, variant: str, seed: int) -> dict:
        from edgeface.training.export import calibration_faces, export
        from edgeface.training.tf_setup import tf

        out = self.work / "runs" / f"{variant}-s{seed}.json"
        if out.exists():
            return json.loads(out.read_text())
        started = time.time()
        int8 = variant in QUANTIZED_FROM
        model = self.float_model(QUANTIZED_FROM.get(variant, variant), seed)
        tflite = self.work / "models" / f"{variant}-s{seed}.tflite"
        calibration = calibration_faces([self.work / "train-photos"], 200, seed) if int8 else None
        manifest = replace(self.manifest, architecture="mobilefacenet") if variant == "distilled" else self.manifest
        export(model, tflite, "int8" if int8 else "float32", calibration, manifest=manifest,
               step={"study": variant, "seed": seed})
        row = {"variant": variant, "seed": seed, "file": str(tflite), **self.score(tflite, seed < self.args.lfw_seeds),
               "seconds": round(time.time() - started)}
        tf.keras.backend.clear_session()
        write_json(out, row)
        lfw = f", LFW {100 * row['lfw']:.2f} %" if "lfw" in row else ""
        log(f"{variant} seed {seed}: identification {100 * row['top1']:.2f} %{lfw}")
        return row

    def baseline_row(self) -> dict:
        from edgeface.training.export import export

        out = self.work / "runs" / "baseline.json"
        if out.exists():
            return json.loads(out.read_text())
        tflite = self.work / "models" / "baseline.tflite"
        export(self.backbone, tflite, "float32", manifest=self.manifest, step={"study": "baseline"})
        row = {"variant": "baseline (no fine-tuning)", "seed": 0, "file": str(tflite), **self.score(tflite)}
        write_json(out, row)
        return row


def summarise(rows: list[dict], baseline: dict, bench_rows: dict[str, dict]) -> tuple[list[dict], list[str]]:
    """Per variant: mean +- SD over seeds, and the paired comparison with the control at the same seeds."""
    from edgeface.evaluate.stats import bootstrap_ci, photo_differences, sign_flip_p

    by: dict[str, dict[int, dict]] = {}
    for r in rows:
        by.setdefault(r["variant"], {})[r["seed"]] = r

    def bits(r: dict) -> np.ndarray:
        return np.frombuffer(r["correct"].encode(), np.uint8) == ord("1")

    table, sentences = [], []
    control = by.get("control", {})
    for variant in [v for v in VARIANTS if v in by]:
        runs = by[variant]
        seeds = sorted(runs)
        top1 = np.array([runs[k]["top1"] for k in seeds])
        scored = [k for k in seeds if runs[k].get("lfw") is not None]  # LFW is scored on the first --lfw-seeds
        lfw = np.array([runs[k]["lfw"] for k in scored])
        entry = {"variant": variant, "seeds": seeds,
                 "top1_mean": float(top1.mean()), "top1_sd": float(top1.std(ddof=1)) if len(seeds) > 1 else None,
                 "train_top1_mean": float(np.mean([runs[k]["train_top1"] for k in seeds])),
                 "lfw_seeds": scored, "lfw_mean": float(lfw.mean()),
                 "lfw_sd": float(lfw.std(ddof=1)) if len(scored) > 1 else None,
                 "lfw_se_folds": float(np.mean([runs[k]["lfw_se"] for k in scored])),
                 "tar_1e-3_mean": float(np.mean([runs[k]["tar_1e-3"] for k in scored])),
                 **{k: bench_rows.get(variant, {}).get(k) for k in ("size_bytes", "gzip_bytes", "flops", "p50_ms")}}
        paired = [k for k in seeds if k in control]
        if variant != "control" and paired:
            per_seed = np.array([runs[k]["top1"] - control[k]["top1"] for k in paired])
            diffs = photo_differences(np.stack([bits(runs[k]) for k in paired]),
                                      np.stack([bits(control[k]) for k in paired]))
            low, high = bootstrap_ci(diffs)
            p = sign_flip_p(diffs)
            entry.update({"paired_seeds": paired, "delta_top1_pp": float(100 * per_seed.mean()),
                          "delta_top1_sd_pp": float(100 * per_seed.std(ddof=1)) if len(paired) > 1 else None,
                          "delta_top1_ci95_pp": [100 * low, 100 * high], "p_value": p,
                          "delta_lfw_pp": float(100 * np.mean([runs[k]["lfw"] - control[k]["lfw"] for k in paired
                                                               if k in scored and control[k].get("lfw") is not None]))})
            sd = f" +- {entry['delta_top1_sd_pp']:.2f}" if entry["delta_top1_sd_pp"] is not None else ""
            sentences.append(f"{variant}: identification changed by {entry['delta_top1_pp']:+.2f}{sd} pp over "
                             f"{len(paired)} seeds (95 % CI {100 * low:+.2f} to {100 * high:+.2f} pp, p = {p:.4f}); "
                             f"LFW {entry['delta_lfw_pp']:+.2f} pp")
        table.append(entry)
    table.insert(0, {"variant": baseline["variant"], "seeds": [0], "top1_mean": baseline["top1"],
                     "train_top1_mean": baseline["train_top1"], "lfw_mean": baseline["lfw"],
                     "lfw_se_folds": baseline["lfw_se"],
                     "tar_1e-3_mean": baseline["tar_1e-3"],
                     **{k: bench_rows.get("baseline", {}).get(k) for k in ("size_bytes", "gzip_bytes", "flops",
                                                                           "p50_ms")}})
    return table, sentences


COLUMNS = ("variant", "seeds", "held-out top-1 %", "train top-1 %", "LFW View 2 %", "TAR@1e-3 %", "KB", "MFLOPs",
           "p50 ms", "top-1 vs control, pp", "95 % CI, pp", "p")


def table_rows(table: list[dict]) -> list[tuple[str, ...]]:
    """The study's table as text cells (mean +- SD over seeds), for the terminal and for markdown."""
    def pct(m: float | None, sd: float | None = None) -> str:
        return "" if m is None else f"{100 * m:.2f}" + (f" +- {100 * sd:.2f}" if sd is not None else "")

    rows = []
    for e in table:
        ci = e.get("delta_top1_ci95_pp")
        rows.append((e["variant"], str(len(e["seeds"])), pct(e["top1_mean"], e.get("top1_sd")),
                     pct(e["train_top1_mean"]), pct(e["lfw_mean"], e.get("lfw_sd") or e.get("lfw_se_folds")),
                     pct(e["tar_1e-3_mean"]),
                     f"{e['size_bytes'] / 1024:.0f}" if e.get("size_bytes") else "",
                     f"{e['flops'] / 1e6:.0f}" if e.get("flops") else "",
                     f"{e['p50_ms']:.2f}" if e.get("p50_ms") else "",
                     f"{e['delta_top1_pp']:+.2f}" + (f" +- {e['delta_top1_sd_pp']:.2f}"
                                                      if e.get("delta_top1_sd_pp") is not None else "") if ci else "",
                     f"{ci[0]:+.2f} .. {ci[1]:+.2f}" if ci else "", f"{e['p_value']:.4f}" if ci else ""))
    return rows


def print_table(table: list[dict]) -> None:
    rows = [COLUMNS, *table_rows(table)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def write_markdown(table: list[dict], sentences: list[str], path: Path) -> None:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---" + "|---:" * (len(COLUMNS) - 1) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(table)]
    path.write_text("\n".join(lines) + "\n\n" + "\n".join(f"* {s}" for s in sentences) + "\n")


def bench_files(work: Path, variants: list[str]) -> dict[str, dict]:
    """p50 (1 thread, XNNPACK), size and FLOPs of each variant's seed-0 file, all measured side by side."""
    from edgeface.runtime.bench import bench

    files = {"baseline": work / "models" / "baseline.tflite",
             **{v: work / "models" / f"{v}-s0.tflite" for v in variants}}
    files = {k: v for k, v in files.items() if v.exists()}
    rows = bench([str(v) for v in files.values()], [1], runs=100, warmup=10, roofline=False)
    return dict(zip(files, rows, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", default=str(HOME / "prepared-yunet"))
    parser.add_argument("--work", default=str(HOME / "seed-study"))
    parser.add_argument("--lfw-dir", default=str(LFW))
    parser.add_argument("--pairs", default=str(PAIRS))
    parser.add_argument("--width", type=float, default=None, help="skip the timing and use this width")
    parser.add_argument("--budget-min", type=float, default=40.0, help="wall-clock budget for the baseline")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--val-every", type=int, default=5)
    parser.add_argument("--head", choices=("softmax", "arcface"), default="softmax",
                        help="softmax: the seed's plain classifier (ArcFace from scratch barely moved in 5 epochs "
                             "on 391 people: 5.7 %% held-out)")
    parser.add_argument("--views", default=None,
                        help="prepared folder of damaged views (edgeface data views); those of training photos join "
                             "the baseline's training set")
    parser.add_argument("--teacher", default=None,
                        help="train the baseline on a teacher's embeddings (cosine + relation) as well as the labels "
                             "(ArcFace head, --identity-weight): the regulariser a 391-person training set lacks")
    parser.add_argument("--identity-weight", type=float, default=0.5)
    parser.add_argument("--init", default=None,
                        help="a new schedule from an earlier baseline's checkpoint.keras (backbone and head), in a "
                             "new --work; that run's split, training photos and views are copied into it")
    parser.add_argument("--name", default="seed_study", help="results/<name>.json and .md")
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--finetune-lr", type=float, default=5e-4)
    parser.add_argument("--kd-epochs", type=int, default=5)
    parser.add_argument("--kd-lr", type=float, default=2e-3, help="peak rate of the distilled student")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--lfw-seeds", type=int, default=1,
                        help="score LFW View 2 on the first N seeds (identification is scored on all)")
    parser.add_argument("--kd-seeds", type=int, default=3, help="seeds for the distilled student (the slowest)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--stage", choices=("baseline", "all", "report"), default="all",
                        help="report: summarise the runs already cached, train nothing")
    args = parser.parse_args()
    started = time.time()
    work = Path(args.work)
    if args.init:
        same_split_as(Path(args.init), work)
    train, test = split(Path(args.prepared), work)
    log(f"{len(train)} training photos, {len(test)} held out, {len({r['identity'] for r in train})} identities")
    baseline = train_baseline(work, train, test, args)
    if args.stage == "baseline":
        return
    wanted = [v for v in args.variants.split(",") if v]
    if unknown := set(wanted) - set(VARIANTS):
        raise SystemExit(f"unknown variant(s): {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}")
    study = Study(work, train, test, args)
    base_row = study.baseline_row()
    log(f"baseline: identification {100 * base_row['top1']:.2f} %, LFW {100 * base_row['lfw']:.2f} %")
    rows = []
    for seed in range(args.seeds):  # seed-major: every variant has a first seed before any has a second
        for variant in wanted:
            if variant == "distilled" and seed >= args.kd_seeds:
                continue
            cached = work / "runs" / f"{variant}-s{seed}.json"
            if args.stage == "report":
                rows += [json.loads(cached.read_text())] if cached.exists() else []
            else:
                rows.append(study.run(variant, seed))
    table, sentences = summarise(rows, base_row, bench_files(work, wanted))
    print_table(table)
    print("\n".join(sentences))
    write_markdown(table, sentences, RESULTS / f"{args.name}.md")
    save(f"{args.name}.json", {
        "data": {"identities": len({r["identity"] for r in train}), "train_photos": len(train),
                 "held_out_photos": len(test), "sources": list(LABELLED), "alignment": "yunet-5pt"},
        "baseline": {k: v for k, v in baseline.items() if k != "history"}, "curve": baseline.get("history"),
        "settings": {k: getattr(args, k) for k in ("finetune_epochs", "finetune_lr", "kd_epochs", "kd_lr", "seeds",
                                                   "kd_seeds", "lfw_seeds", "batch", "views", "teacher",
                                                   "identity_weight", "init")},
        "table": table, "sentences": sentences, "runs": rows}, started)


if __name__ == "__main__":
    main()
