"""The one training loop behind ``train`` and ``distill``: strategy, optimiser and cosine schedule,
checkpoint every epoch, ``--resume``, LFW View 2 validation through the same code as ``edgeface eval``,
a CSV log per epoch and a JSON summary.
"""

from __future__ import annotations

import contextlib
import csv
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.files import atomic_write, write_json
from edgeface.manifest import InputSpec, Manifest, load_manifest
from edgeface.training.models.registry import Architecture, architecture, build_model, count_flops
from edgeface.training.tf_setup import keras, tf
from edgeface.training.train.keras_io import load_keras, save_keras
from edgeface.vision.detector_options import DLIB_CHIP_ALIGNMENT

CHECKPOINT = "checkpoint.keras"
FINAL = "model.keras"


@dataclass
class TrainConfig:
    arch: str
    out: Path
    width: float | None = None
    input_size: int | None = None  # None: the architecture's own
    embedding_size: int = 128
    epochs: int = 20
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    resume: bool = False
    strategy: str = "none"
    seed: int = 0
    val_lfw_dir: Path | None = None
    val_pairs: Path | None = None
    val_every: int = 5
    init: Path | None = None

    def __post_init__(self) -> None:
        """Refuse a bad setting before any data is read or teacher run."""
        spec = architecture(self.arch).input_spec  # refuses an unknown name
        self.input_size = self.input_size or spec.size
        if not 32 <= self.input_size <= 512:
            raise EdgefaceError(f"--input-size {self.input_size}: give 32 to 512 px")
        if self.epochs < 1 or self.batch < 1 or self.lr <= 0:
            raise EdgefaceError("--epochs and --batch must be at least 1 and --lr positive")
        if self.init is not None and self.resume:
            raise EdgefaceError("--init starts a new schedule from a model's weights, --resume continues one: pick one")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``none``: default; ``mirrored``: all local GPUs (or the CPU); ``multiworker``: TF_CONFIG cluster."""
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise EdgefaceError(f"unknown --strategy {name!r}; choose none, mirrored or multiworker")


def schedule(lr: float, total_steps: int, warmup_steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up then cosine decay to zero."""
    return keras.optimizers.schedules.CosineDecay(0.0 if warmup_steps else lr, max(1, total_steps - warmup_steps),
                                                  warmup_target=lr if warmup_steps else None,
                                                  warmup_steps=warmup_steps)


def embedding_part(model: keras.Model) -> keras.Model:
    """The embedding network inside a training model (a margin head wraps it as layer ``backbone``)."""
    try:
        return model.get_layer("backbone")
    except ValueError:
        return model


class EpochLog(keras.callbacks.Callback):
    """``log.csv``: one row per epoch with every metric any epoch logged, rewritten atomically each epoch.

    Why not Keras' CSVLogger: it fixes its columns at the first epoch, so a score logged every N epochs (LFW
    validation, a held-out identification score) never reached the file.
    """

    def __init__(self, path: Path, append: bool) -> None:
        super().__init__()
        self.path = Path(path)
        self.rows: list[dict] = []
        if append and self.path.exists():
            with open(self.path, newline="") as handle:
                self.rows = list(csv.DictReader(handle))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        columns = ["epoch", *dict.fromkeys(k for row in self.rows for k in row if k != "epoch")]
        with atomic_write(self.path, "w") as handle:
            writer = csv.DictWriter(handle, columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)


class LFWValidation(keras.callbacks.Callback):
    """Score the current embedding network on LFW View 2 every N epochs (and after the last)."""

    def __init__(self, lfw_dir: Path, pairs: Path, every: int, epochs: int, spec: InputSpec,
                 alignment: str | None) -> None:
        super().__init__()
        self.lfw_dir, self.pairs, self.every, self.epochs = lfw_dir, pairs, max(1, every), epochs
        self.spec, self.alignment = spec, alignment

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every and epoch + 1 != self.epochs:
            return
        from edgeface.evaluate.lfw import evaluate_lfw
        from edgeface.training.train.keras_embedder import KerasEmbedder

        embedder = KerasEmbedder(embedding_part(self.model), name="training", spec=self.spec, alignment=self.alignment)
        report = evaluate_lfw(embedder, self.lfw_dir, self.pairs)
        if logs is not None:
            logs["lfw_accuracy"] = report["accuracy"]
            logs["lfw_accuracy_se"] = report["accuracy_se"]
        print(f"\nepoch {epoch + 1}: LFW View 2 {100 * report['accuracy']:.2f} % +- "
              f"{100 * report['accuracy_se']:.2f}", file=sys.stderr, flush=True)


def history_of(arch: Architecture, init: Path | None) -> list[dict]:
    """The steps the weights went through before this run: a warm start's own chain (a model trained on from an
    earlier run keeps that run's steps, and its drop-blocks or export), else the architecture's origin."""
    manifest = load_manifest(init) if init is not None else None
    return list(manifest.chain) if manifest is not None and manifest.chain else arch.origin()


def warm_start(model: keras.Model, init: Path, sample_faces: Callable[[], np.ndarray]) -> bool:
    """Copy the weights of a trained embedding network of the same architecture and width into ``model``'s
    embedding network: from a Keras model, or from a float32 ``.tflite`` (BN unfolded on ``sample_faces()``, see
    ``from_tflite``). A training checkpoint (``checkpoint.keras``) whose margin head has the shape of ``model``'s
    (the same identities) hands that head on too; returns whether it did.

    Why: a new schedule (another loss, more data, more epochs) starting from a good model costs a fraction of
    training from scratch; ``--resume`` only finishes the schedule a run started with. And a fresh head would score
    the trained embedding against random class centres, its large first losses pulling the embedding toward them.
    """
    backbone = embedding_part(model)
    if Path(init).suffix == ".tflite":
        from edgeface.training.train.from_tflite import load_tflite_weights

        load_tflite_weights(backbone, init, sample_faces())
        return False
    trained = load_keras(init)
    theirs, ours = embedding_part(trained).get_weights(), backbone.get_weights()
    if len(theirs) != len(ours) or any(a.shape != b.shape for a, b in zip(theirs, ours, strict=True)):
        raise EdgefaceError(f"--init {init}: its layers do not match {backbone.name} at this width and embedding "
                            "size")
    backbone.set_weights(theirs)
    try:
        their_head, our_head = trained.get_layer("head").get_weights(), model.get_layer("head")
    except ValueError:  # an embedding network alone, or a model trained without a head
        return False
    if [w.shape for w in their_head] != [w.shape for w in our_head.get_weights()]:
        return False
    our_head.set_weights(their_head)
    return True


def named_losses(loss: Callable | dict) -> dict:
    """The run's loss functions by the name a checkpoint stores them under, so ``--resume`` can compile it again."""
    losses = loss.values() if isinstance(loss, dict) else [loss]
    return {fn.__name__: fn for fn in losses if callable(fn) and hasattr(fn, "__name__")}  # Keras loss objects
    # (SparseCategoricalCrossentropy, ...) serialise themselves


def first_images(dataset: tf.data.Dataset, count: int) -> np.ndarray:
    """The first ``count`` input images of a training dataset (whatever targets it carries)."""
    images = []
    for x, *_ in dataset:
        x = x[0] if isinstance(x, tuple) else x
        images.append(x.numpy())
        if sum(len(b) for b in images) >= count:
            break
    return np.concatenate(images)[:count]


def fit(config: TrainConfig, datasets: Callable, loss: Callable | dict, steps_per_epoch: int,
        build_train_model: Callable[[keras.Model], keras.Model] | None = None, extra: dict | None = None,
        loss_weights: dict | None = None, callbacks: list | None = None) -> dict:
    """Build (or resume) and train; save ``out/model.keras`` (embedding network) + manifest; return a summary.
    ``callbacks`` run before the checkpoint and the CSV log, so what they add to the epoch's logs (e.g. a held-out
    identification score) is logged too."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if steps_per_epoch < 1:
        raise EdgefaceError(f"fewer faces than one batch ({config.batch}): lower --batch or add data")
    if config.resume and not (out / CHECKPOINT).exists():
        raise EdgefaceError(f"--resume: no checkpoint in {out}")
    arch = architecture(config.arch)
    spec = replace(arch.input_spec, size=config.input_size)
    chip = (extra or {}).get("alignment")
    if chip and (chip == DLIB_CHIP_ALIGNMENT) != (arch.alignment == DLIB_CHIP_ALIGNMENT):
        raise EdgefaceError(f"--arch {config.arch} sees {arch.alignment or 'ArcFace 112x112'} crops, the data folders "
                            f"hold {chip} crops: prepare them with the matching 'data prepare --alignment'")
    tf.keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.strategy)
    log_path = out / "log.csv"
    initial_epoch = 0
    with strategy.scope():
        if config.resume:
            model = load_keras(out / CHECKPOINT, compile=True, custom_objects=named_losses(loss))
            initial_epoch = int(model.optimizer.iterations.numpy()) // steps_per_epoch
        else:
            backbone = build_model(config.arch, config.input_size, config.embedding_size, config.width)
            model = build_train_model(backbone) if build_train_model else backbone
            if config.init is not None and warm_start(
                    model, config.init, lambda: first_images(datasets(spec, config.batch), 512)):
                print(f"--init: the head continues from {config.init}", file=sys.stderr)
            total = steps_per_epoch * config.epochs
            lr = schedule(config.lr, total, int(config.warmup_epochs * steps_per_epoch))
            model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=config.weight_decay), loss=loss,
                          loss_weights=loss_weights)
    hooks: list[keras.callbacks.Callback] = [
        *(callbacks or []),
        keras.callbacks.ModelCheckpoint(str(out / CHECKPOINT), save_weights_only=False),
        EpochLog(log_path, append=config.resume),
        keras.callbacks.TerminateOnNaN(),
    ]
    if config.val_lfw_dir and config.val_pairs:
        hooks.insert(0, LFWValidation(config.val_lfw_dir, config.val_pairs, config.val_every, config.epochs, spec,
                                      (extra or {}).get("alignment")))
    started = time.time()
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints progress to stdout; --json owns stdout
        history = model.fit(datasets(spec, config.batch), epochs=config.epochs, initial_epoch=initial_epoch,
                            steps_per_epoch=steps_per_epoch, callbacks=hooks,
                            verbose=1 if sys.stderr.isatty() else 2)
    seconds = time.time() - started
    if any(not tf.math.is_finite(v) for v in history.history.get("loss", [])):
        raise EdgefaceError("training diverged (loss became NaN): lower --lr")
    embedder = embedding_part(model)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    manifest = Manifest(input=spec, embedding_size=int(embedder.outputs[0].shape[-1]),
                        params=int(embedder.count_params()), flops=count_flops(embedder), architecture=config.arch,
                        alignment=(extra or {}).get("alignment"),
                        chain=[*history_of(arch, config.init), {"step": "train", **settings, **(extra or {})}])
    save_keras(embedder, out / FINAL, manifest)
    summary = {"model": str(out / FINAL), "epochs_run": config.epochs - initial_epoch, "train_seconds": round(seconds),
               "history": {k: [float(x) for x in v] for k, v in history.history.items()},
               "params": manifest.params, "flops": manifest.flops, **(extra or {})}
    write_json(out / "summary.json", summary)
    return summary

