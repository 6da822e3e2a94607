"""Reproduce the shipped default model from ../shared/data, end to end, with the wall time of every step.

    python benchmarks/train_default.py [--epochs 30] [--width 0.75] [--install]
    python benchmarks/train_default.py --init RUN/model.keras --identity-weight 0.05 --run default-run-2 ...

1. `edgeface data prepare` CelebA subset, ORL, the LFW people NOT in pairs.txt, and UTKFace (unlabelled)
2. `edgeface distill` a ReLU6 MobileFaceNet from the dlib ResNet descriptor (CC0 weights; the research-only peer
   MobileFaceNets are never used as teacher), optionally warm-started (--init) and with an ArcFace loss on the
   labelled faces (--identity-weight)
3. `edgeface export` float32 and int8 (int8 I/O, calibrated on 300 prepared faces)
4. `edgeface eval --save-threshold` both exports on LFW View 2 (threshold at FAR 1e-3 into the manifests)
5. with --install: copy both into edgeface/assets/ as the default model
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from common import edgeface_json, save

ASSETS = Path(__file__).resolve().parents[1] / "edgeface" / "assets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared/data")
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "edgeface"))
    parser.add_argument("--arch", default="mobilefacenet")
    parser.add_argument("--width", default="0.75")
    parser.add_argument("--epochs", default="30")
    parser.add_argument("--batch", default="128")
    parser.add_argument("--lr", default="0.004")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init", help="warm start from this model.keras (same width)")
    parser.add_argument("--identity-weight", default="0", help="ArcFace loss weight on labelled faces")
    parser.add_argument("--run", default="default-run", help="run folder under --work")
    parser.add_argument("--install", action="store_true", help="copy the result into edgeface/assets")
    args = parser.parse_args()
    shared, work = Path(args.shared), Path(args.work)
    lfw, pairs = shared / "lfw" / "lfw-deepfunneled", shared / "lfw" / "pairs.txt"
    prepared = work / "prepared"
    started = time.time()
    steps: dict[str, dict] = {}

    def step(name: str, *cli: str) -> dict:
        t = time.time()
        result = edgeface_json(*cli)
        steps[name] = {"seconds": round(time.time() - t, 1), "command": "edgeface " + " ".join(cli) + " --json"}
        return result

    sources = {
        "celeba": (shared / "celeba-subset", ["--identities", str(shared / "celeba-subset" / "identities.txt"),
                                               "--prefix", "celeba_"]),
        "orl": (shared / "orl", ["--prefix", "orl_"]),
        "lfw-train": (lfw, ["--exclude-pairs", str(pairs), "--prefix", "lfw_"]),
        "utk": (shared / "utkface-subset", ["--layout", "flat"]),
    }
    prepared_counts = {name: step(f"prepare {name}", "data", "prepare", str(src), str(prepared / name), *extra)
                       for name, (src, extra) in sources.items()}
    run = work / args.run
    summary = step("distill", "distill", *(str(prepared / n) for n in sources), "--teacher", "dlib", "--arch",
                   args.arch, "--width", args.width, "--epochs", args.epochs, "--batch", args.batch, "--lr", args.lr,
                   "--out", str(run), "--val-lfw-dir", str(lfw), "--val-pairs", str(pairs), "--val-every", "6",
                   "--identity-weight", args.identity_weight, *(["--resume"] if args.resume else []),
                   *(["--init", args.init] if args.init else []))
    exports, evals = {}, {}
    for mode in ("float32", "int8"):
        out = run / f"edgeface-{mode}.tflite"
        exports[mode] = step(f"export {mode}", "export", str(run / "model.keras"), "-o", str(out), "--quantize", mode,
                             "--calib-data", str(prepared / "celeba"), "--calib-data", str(prepared / "utk"))
        evals[mode] = step(f"eval {mode}", "eval", str(out), "--lfw-dir", str(lfw), "--pairs", str(pairs),
                           "--save-threshold")
        print(f"{mode}: LFW {100 * evals[mode]['accuracy']:.2f} % +- {100 * evals[mode]['accuracy_se']:.2f}")
    if args.install:
        ASSETS.mkdir(exist_ok=True)
        for mode, name in (("float32", "edgeface-default-float32"), ("int8", "edgeface-default")):
            for suffix in (".tflite", ".json"):
                shutil.copyfile(run / f"edgeface-{mode}{suffix}", ASSETS / f"{name}{suffix}")
    summary.pop("history", None)
    save("default_model.json", {"steps": steps, "prepared": prepared_counts, "training": summary,
                                "exports": exports, "lfw": evals}, started)


if __name__ == "__main__":
    main()
