"""Reproduce the shipped default model from ../shared/data, end to end, with the wall time of every step.

    python benchmarks/recipes/train_default.py --init ~/.cache/edgeface/stage2/edgeface-default-float32.tflite \
        --epochs 3 --run stage3 --install

1. `edgeface data prepare` (YuNet 5-point alignment, as `recognize` uses): CelebA subset, ORL, the LFW people NOT
   in pairs.txt, and all UTKFace crops (unlabelled): about 32 k faces
2. `edgeface data views` damaged copies (grey, shading, shadow, blur, small-face detail, JPEG, occlusion, colour)
   of every face (2 each by default), labelled by the teacher like any other face
3. `edgeface distill` a ReLU6 MobileFaceNet from the dlib ResNet descriptor (CC0 weights; the research-only peer
   MobileFaceNets are never used as teacher), by default its LiteRT port (`--teacher dlib-port`, checked against
   dlib in benchmarks/archive/dlib_port.py): cosine + batch relation loss, ArcFace on the labelled faces, optionally
   warm-started (--init, a .keras model or a float32 .tflite)
4. `edgeface export` float32 and int8 (int8 I/O, calibrated on prepared faces)
5. `edgeface eval --save-threshold --hold-conditions` both exports on LFW View 2: the threshold keeps FAR <= 1e-3 on
   plain LFW and <= 3e-3 under every camera condition
6. with --install: copy both into edgeface/assets/ as the default model
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import LFW, PAIRS, save, step_runner
from common import TRAINING_SOURCES as SOURCES

from edgeface.default_model import ASSETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "edgeface"))
    parser.add_argument("--arch", default="mobilefacenet")
    parser.add_argument("--width", default="0.75")
    parser.add_argument("--epochs", default="6")
    parser.add_argument("--batch", default="128")
    parser.add_argument("--lr", default="0.002")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init", help="warm start from this model.keras or float32 .tflite (same width)")
    parser.add_argument("--identity-weight", default="0.05", help="ArcFace loss weight on labelled faces")
    parser.add_argument("--relation-weight", default="2", help="batch relation loss weight")
    parser.add_argument("--views-of", default=",".join(SOURCES),
                        help="prepared sets to make damaged views of ('' for none)")
    parser.add_argument("--views-per-face", default="2")
    parser.add_argument("--teacher", default="dlib-port", help="dlib, or dlib-port: the same network on LiteRT")
    parser.add_argument("--val-every", default="1")
    parser.add_argument("--run", default="default-run", help="run folder under --work")
    parser.add_argument("--install", action="store_true", help="copy the result into edgeface/assets")
    args = parser.parse_args()
    work = Path(args.work)
    prepared, views = work / "prepared-yunet", work / "views-yunet"
    started = time.time()
    steps: dict[str, dict] = {}
    step = step_runner(steps)

    prepared_counts = {name: step(f"prepare {name}", "data", "prepare", str(src), str(prepared / name), *extra)
                       for name, (src, extra) in SOURCES.items()}
    view_sets = [v for v in args.views_of.split(",") if v]
    view_counts = {name: step(f"views {name}", "data", "views", str(prepared / name), str(views / name),
                                    "--per-face", args.views_per_face)
                   for name in view_sets}
    folders = [str(prepared / n) for n in SOURCES] + [str(views / n) for n in view_sets]
    run = work / args.run
    summary = step("distill", "distill", *folders, "--teacher", args.teacher, "--arch", args.arch, "--width",
                   args.width, "--epochs", args.epochs, "--batch", args.batch, "--lr", args.lr, "--out", str(run),
                   "--val-lfw-dir", str(LFW), "--val-pairs", str(PAIRS), "--val-every", args.val_every,
                   "--identity-weight", args.identity_weight, "--relation-weight", args.relation_weight,
                   *(["--resume"] if args.resume else []), *(["--init", args.init] if args.init else []))
    exports, evals = {}, {}
    for mode in ("float32", "int8"):
        out = run / f"edgeface-{mode}.tflite"
        exports[mode] = step(f"export {mode}", "export", str(run / "model.keras"), "-o", str(out), "--quantize", mode,
                             "--calib-data", str(prepared / "celeba"), "--calib-data", str(prepared / "utkface-subset"))
        evals[mode] = step(f"eval {mode}", "eval", str(out), "--lfw-dir", str(LFW), "--pairs", str(PAIRS),
                           "--save-threshold", "--hold-conditions")
        print(f"{mode}: LFW {100 * evals[mode]['accuracy']:.2f} % +- {100 * evals[mode]['accuracy_se']:.2f}")
    if args.install:
        ASSETS.mkdir(exist_ok=True)
        for mode, name in (("float32", "edgeface-default-float32"), ("int8", "edgeface-default")):
            for suffix in (".tflite", ".json"):
                shutil.copyfile(run / f"edgeface-{mode}{suffix}", ASSETS / f"{name}{suffix}")
    save("default_model.json", {"steps": steps, "prepared": prepared_counts, "views": view_counts,
                                "training": summary, "exports": exports, "lfw": evals}, started)


if __name__ == "__main__":
    main()
