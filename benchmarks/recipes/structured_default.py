"""Structured pruning of the shipped default that tries to keep its accuracy: channels removed in equal
geometric steps, each followed by distillation from the *unpruned* model (cosine + batch relation loss) on the
training faces (CelebA, ORL, the LFW people outside pairs.txt, UTKFace; never a View 2 person). After every step
the int8 export is scored on LFW View 2, which gives the accuracy curve against fine-tuning epochs; at the end the
unpruned and pruned int8 files are timed side by side (1 thread).  -> results/structured_default.json

    python benchmarks/recipes/structured_default.py --ratio 0.5 --steps 4 --epochs 8 --faces 12000
    python benchmarks/recipes/structured_default.py --faces 32000 --more-epochs 4    (continue the last step)
    python benchmarks/recipes/structured_default.py --flops 0.5 --name structured_allocated --work ~/.cache/edgeface/sa
        (channels allocated per group by sensitivity instead of a uniform ratio)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import LFW, PAIRS, RESULTS, save

HOME = Path.home() / ".cache" / "edgeface"
DATA = [HOME / "prepared-yunet" / n for n in ("celeba", "orl", "lfw-outside-pairs", "utkface-subset", "utkface-more")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(HOME / "stage3" / "model.keras"), help="the default's Keras model")
    parser.add_argument("--work", default=str(HOME / "structured-default"))
    parser.add_argument("--data", nargs="+", default=[str(d) for d in DATA])
    parser.add_argument("--ratio", type=float, default=0.55)
    parser.add_argument("--flops", type=float, default=None,
                        help="instead of --ratio: remove this fraction of FLOPs, channels allocated by sensitivity")
    parser.add_argument("--name", default="structured_default", help="results/<name>.json")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--epochs", type=float, default=8.0, help="fine-tuning passes over --faces, all steps")
    parser.add_argument("--faces", type=int, default=12000)
    parser.add_argument("--relation-weight", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--more-epochs", type=int, default=0,
                        help="instead of pruning: fine-tune the pruned model of the earlier run (<work>/pruned.keras) "
                             "for this many more passes over --faces, at half --lr, scored after each; the earlier "
                             "JSON's curve is extended")
    args = parser.parse_args()
    started = time.time()

    from edgeface.evaluate.lfw import evaluate_lfw
    from edgeface.runtime.bench import bench
    from edgeface.training.compress.finetune import FaceSet, finetune
    from edgeface.training.compress.io import load_model, save_compressed
    from edgeface.training.compress.prune import structured_prune, structured_step
    from edgeface.training.export import export
    from edgeface.training.models.registry import count_flops
    from edgeface.training.tf_setup import keras
    from edgeface.training.train.keras_io import load_keras
    from edgeface.vision.embed import TFLiteEmbedder

    work = Path(args.work)
    model, manifest = load_model(args.model)
    faces = FaceSet(args.data, model, limit=args.faces, spec=manifest.input)
    calibration = faces.faces[:: max(1, len(faces.faces) // 200)][:200]
    per_step = args.epochs / args.steps

    def prune_step(settings: dict, epochs: float, step: int | None = None) -> dict:
        """The manifest chain's record of this pruning (what `edgeface prune --structured` writes, and more)."""
        return structured_step(settings["ratio"], settings["flops"], settings["steps"], settings["relation_weight"],
                               epochs, **({"at_step": step} if step else {}), faces=len(faces.faces), lr=settings["lr"])

    def score(tag: str, keras_model) -> dict:
        path, _ = export(keras_model, work / f"{tag}.tflite", "int8", calibration, manifest=manifest)
        lfw = evaluate_lfw(TFLiteEmbedder(path, threads=2), LFW, PAIRS)
        row = {"file": str(path), "flops": count_flops(keras_model), "lfw": lfw["accuracy"],
               "lfw_se": lfw["accuracy_se"], "roc_auc": lfw["roc_auc"], "tar_1e-3": lfw["tar_at_far"]["0.001"]}
        print(f"{tag}: {row['flops'] / 1e6:.0f} MFLOPs, LFW {100 * row['lfw']:.2f} %", flush=True)
        return row

    if args.more_epochs:
        earlier = json.loads((RESULTS / f"{args.name}.json").read_text())
        unpruned, curve, groups = earlier["unpruned"], earlier["curve"], earlier["groups"]
        this_run = {"command": " ".join(["python", *sys.argv]), "data": args.data, "more_epochs": args.more_epochs,
                    "faces": len(faces.faces), "lr": args.lr / 2}
        history = {"settings": earlier["settings"], "faces": earlier["faces"],
                   "first_command": earlier.get("first_command", earlier["command"]),
                   "continued": [*earlier.get("continued", []), this_run]}  # every continuation, in order
        thin = load_keras(work / ("pruned-more.keras" if curve[-1]["step"] == "more" else "pruned.keras"))
        done = curve[-1]["epochs"]

        class Score(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                # epochs stay in passes over the first run's faces, so the curve has one x axis
                row = {"step": "more", "epochs": done + (epoch + 1) * len(faces.faces) / earlier["faces"],
                       "loss": (logs or {}).get("loss"), **score(f"more{epoch + 1}", self.model)}
                curve.append(row)
                step = prune_step(earlier["settings"], row["epochs"])
                save_compressed(self.model, work / "pruned-more.keras", manifest, step)

        finetune(thin, faces, args.more_epochs, lr=args.lr / 2, relation_weight=args.relation_weight,
                 callbacks=[Score()])
    else:
        unpruned = score("unpruned", model)

        def on_step(k: int, step_model) -> dict:
            # a later --more-epochs run continues from the last step; its manifest says what was done to it
            save_compressed(step_model, work / "pruned.keras", manifest, prune_step(vars(args), k * per_step, k))
            return {"epochs": k * per_step, **score(f"step{k}", step_model)}

        thin, report = structured_prune(model, args.ratio, faces, args.epochs, lr=args.lr, steps=args.steps,
                                        relation_weight=args.relation_weight, on_step=on_step, flops=args.flops)
        curve, groups = [r for r in report if "step" in r], [r for r in report if "group" in r]
        history = {"settings": vars(args), "faces": len(faces.faces)}
    timed = bench([unpruned["file"], curve[-1]["file"]], [1], runs=300, warmup=30, roofline=False)
    final = curve[-1]
    summary = {"flops_removed": 1 - final["flops"] / unpruned["flops"],
               "lfw_change_pp": 100 * (final["lfw"] - unpruned["lfw"]),
               "speedup_int8_1thread": timed[0]["p50_ms"] / timed[1]["p50_ms"],
               "p50_ms": {"unpruned": timed[0]["p50_ms"], "pruned": timed[1]["p50_ms"]},
               "targets": {"flops_removed": ">= 0.50", "lfw_change_pp": ">= -0.5", "speedup": ">= 1.6"}}
    print(summary)
    save(f"{args.name}.json", {**history, "unpruned": unpruned, "curve": curve, "groups": groups,
                                     "summary": summary}, started)


if __name__ == "__main__":
    main()
