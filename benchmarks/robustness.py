"""LFW View 2 under camera conditions: the same 6,000 pairs as they are, grey, one-sidedly lit, at 32 px between the
eyes and as JPEG 20, for the default model (float32 and int8; one-pass probes against flip-averaged templates, as
it ships), the fast and small models (stage 3, int8), dlib and the MobileFaceNet peer, in one run.

    python benchmarks/robustness.py [--models default,default-float32,fast,small,dlib,peer] [--reuse dlib]

`--reuse` copies the rows of models whose scores cannot have changed (dlib: its own network and alignment on the
same YuNet detections) from the previous results file instead of spending 40 minutes re-running them.

Each cell is `edgeface eval MODEL --condition C --json` (cached embeddings make a re-run fast). Reports accuracy
(10-fold mean +- SE), ROC AUC, TAR at FAR 1e-3, and the FAR at the model's own stored threshold: what `recognize`
would let through under that condition. dlib and the peer carry no threshold of ours.
-> results/robustness.json and results/robustness.md (accuracy % / TAR@FAR1e-3 % / FAR per 1,000 at the threshold)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import LFW, PAIRS, PEER_FLAGS, RESULTS, SHARED, edgeface_json, save

from edgeface.files import read_json
from edgeface.vision.condition_names import CONDITIONS

ASSETS = Path(__file__).resolve().parents[1] / "edgeface" / "assets"
STAGE2 = Path.home() / ".cache" / "edgeface" / "stage2"


def model_args(name: str, stage2: Path) -> list[str]:
    return {
        "default": [str(ASSETS / "edgeface-default.tflite")],
        "default-float32": [str(ASSETS / "edgeface-default-float32.tflite")],
        "small": [str(ASSETS / "edgeface-small.tflite")],
        "fast": [str(ASSETS / "edgeface-fast.tflite")],
        "stage2": [str(stage2 / "edgeface-default.tflite")],
        "stage2-float32": [str(stage2 / "edgeface-default-float32.tflite")],
        "dlib": ["dlib"],
        "peer": [str(SHARED / "peers" / "mobilefacenet_float32.tflite"), *PEER_FLAGS],
    }[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="default,default-float32,fast,small,dlib,peer")
    parser.add_argument("--reuse", default="", help="models whose rows come from the previous --out file")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--stage2", type=Path, default=STAGE2, help="folder with the stage-2 default model files")
    parser.add_argument("--out", default="robustness.json")
    args = parser.parse_args()
    started = time.time()
    reuse = set(filter(None, args.reuse.split(",")))
    earlier = read_json(RESULTS / args.out)["rows"] if reuse else []
    rows = []
    for name in args.models.split(","):
        if name in reuse:
            rows += [r for r in earlier if r["model"] == name and r["condition"] in args.conditions.split(",")]
            continue
        for condition in args.conditions.split(","):
            report = edgeface_json("eval", *model_args(name, args.stage2), "--lfw-dir", str(LFW), "--pairs",
                                   str(PAIRS), "--condition", condition)
            rows.append({"model": name, "condition": condition, **{k: report.get(k) for k in (
                "accuracy", "accuracy_se", "roc_auc", "tar_at_far", "threshold_at_far", "model_threshold",
                "far_at_model_threshold", "tar_at_model_threshold", "all_pairs", "n_detect_failed", "seconds")}})
            far = report.get("far_at_model_threshold")
            print(f"{name:16s} {condition:9s} {100 * report['accuracy']:6.2f} % +- {100 * report['accuracy_se']:.2f} "
                  f"AUC {report['roc_auc']:.4f} TAR@1e-3 {100 * report['tar_at_far']['0.001']:5.1f} % "
                  f"FAR@thr {'-' if far is None else f'{far:.4f}'}", flush=True)
    save(args.out, {"conditions": {c: CONDITIONS[c] for c in args.conditions.split(",")}, "rows": rows}, started)
    table = markdown(rows, args.conditions.split(","))
    (RESULTS / Path(args.out).with_suffix(".md").name).write_text(table)
    print(table)


def markdown(rows: list[dict], conditions: list[str]) -> str:
    """One line per model, one column per condition: accuracy, TAR at FAR 1e-3 and the FAR at the model's threshold
    (per 1,000, on every cross-identity pair of the View 2 images where the row has them)."""
    cells: dict[str, dict[str, str]] = {}
    for r in rows:
        measured = (r.get("all_pairs") or {}).get("far_at_model_threshold", r["far_at_model_threshold"])
        far = "" if measured is None else f" / {1000 * measured:.1f}"
        cells.setdefault(r["model"], {})[r["condition"]] = (f"{100 * r['accuracy']:.2f} / "
                                                           f"{100 * r['tar_at_far']['0.001']:.1f}{far}")
    lines = ["| model | " + " | ".join(conditions) + " |", "|---|" + "---|" * len(conditions)]
    lines += [f"| {m} | " + " | ".join(c.get(k, "") for k in conditions) + " |" for m, c in cells.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
