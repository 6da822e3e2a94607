"""The seed article's experiment, honestly: a VGG16-style face classifier trained on CelebA-subset identities,
magnitude-pruned to 50 / 75 / 90 % (each fine-tuned), scored before and after on
  * identification: held-out CelebA photos (20 % of each identity) matched to the class means of the training
    photos, top-1, from the exported float .tflite;
  * verification: LFW View 2 through `edgeface eval` on the same file.
-> results/seed_experiment.json

    python benchmarks/seed_experiment.py [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import edgeface_json, save

from edgeface.data.prepare import read_manifest
from edgeface.vision.embed import TFLiteEmbedder
from edgeface.vision.image import read_image

HOME = Path.home() / ".cache" / "edgeface"


def split(prepared: Path, out: Path, held_out: float = 0.2, seed: int = 0) -> tuple[Path, list[dict], list[dict]]:
    """Write a training folder (manifest with absolute paths) and return (folder, train records, test records)."""
    rng = np.random.default_rng(seed)
    by_id: dict[str, list[dict]] = {}
    for r in read_manifest(prepared):
        if r.get("status") == "ok":
            by_id.setdefault(r["identity"], []).append({**r, "file": str(prepared / r["file"])})
    train, test = [], []
    for records in by_id.values():
        order = rng.permutation(len(records))
        n_test = max(1, round(held_out * len(records))) if len(records) >= 3 else 0
        test += [records[i] for i in order[:n_test]]
        train += [records[i] for i in order[n_test:]]
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    return out, train, test


def identification(model: Path, train: list[dict], test: list[dict]) -> float:
    embedder = TFLiteEmbedder(model)

    def embed(records: list[dict]) -> np.ndarray:
        return np.concatenate([embedder.embed(np.stack([read_image(r["file"]) for r in records[i : i + 64]]))
                               for i in range(0, len(records), 64)])

    names = sorted({r["identity"] for r in train})
    index = {n: i for i, n in enumerate(names)}
    gallery = embed(train)
    owner = np.array([index[r["identity"]] for r in train])
    means = np.stack([gallery[owner == k].mean(0) for k in range(len(names))])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    probes = embed(test)
    predicted = np.argmax(probes @ means.T, axis=1)
    return float(np.mean(predicted == np.array([index[r["identity"]] for r in test])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", default=str(HOME / "prepared" / "celeba"))
    parser.add_argument("--work", default=str(HOME / "seed"))
    parser.add_argument("--epochs", default="10")
    parser.add_argument("--finetune-epochs", default="2")
    parser.add_argument("--lfw-dir", default="../shared/data/lfw/lfw-deepfunneled")
    parser.add_argument("--pairs", default="../shared/data/lfw/pairs.txt")
    args = parser.parse_args()
    started = time.time()
    work = Path(args.work)
    train_dir, train, test = split(Path(args.prepared), work / "celeba-train")
    run = HOME / "vgg16-run"
    if not (run / "model.keras").exists():
        edgeface_json("train", str(train_dir), "--arch", "vgg16", "--head", "softmax", "--epochs", args.epochs,
                      "--batch", "64", "--lr", "0.002", "--out", str(run))
    models = {"unpruned": run / "model.keras"}
    for s in ("0.5", "0.75", "0.9"):
        out = work / f"vgg16-mag{s}.keras"
        if not out.exists():
            edgeface_json("prune", str(run / "model.keras"), "-o", str(out), "--sparsity", s, "--data", str(train_dir),
                          "--epochs", args.finetune_epochs)
        models[f"magnitude {int(float(s) * 100)} %"] = out
    rows = []
    for name, keras_file in models.items():
        tflite = keras_file.with_suffix(".tflite")
        edgeface_json("export", str(keras_file), "-o", str(tflite))
        lfw = edgeface_json("eval", str(tflite), "--lfw-dir", args.lfw_dir, "--pairs", args.pairs)
        ident = identification(tflite, train, test)
        rows.append({"model": name, "identification_top1": ident, "lfw_accuracy": lfw["accuracy"],
                     "lfw_accuracy_se": lfw["accuracy_se"], "tar_at_far_1e-3": lfw["tar_at_far"]["0.001"]})
        print(f"{name}: identification {100 * ident:.2f} %, LFW {100 * lfw['accuracy']:.2f} +- "
              f"{100 * lfw['accuracy_se']:.2f} %")
    base = rows[0]
    verdict = []
    for r in rows[1:]:
        d_id = 100 * (r["identification_top1"] - base["identification_top1"])
        d_lfw = 100 * (r["lfw_accuracy"] - base["lfw_accuracy"])
        significant = abs(d_lfw) > 2 * 100 * max(r["lfw_accuracy_se"], base["lfw_accuracy_se"])
        verdict.append(f"{r['model']}: identification {d_id:+.2f} pp, LFW {d_lfw:+.2f} pp "
                       f"({'beyond' if significant else 'within'} 2 standard errors)")
    save("seed_experiment.json", {"identities": len({r['identity'] for r in train}), "train_images": len(train),
                                  "held_out_images": len(test), "results": rows, "verdict": verdict}, started)
    print("\n".join(verdict))


if __name__ == "__main__":
    main()
