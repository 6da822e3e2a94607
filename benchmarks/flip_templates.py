"""Flip at single cost (issue #40): the shipped default (one pass a probe, enrolled templates flip-averaged) beside the
same network flip-averaged inside the file (two passes on every face: the default until now), each placed and judged
by the same rules with the same light gates.

    python benchmarks/flip_templates.py [--flip-file FILE] [--workers 2]

Why: a probe is embedded on every frame, a template once at enrolment, so averaging only the templates halves the
per-frame cost of the network. What it costs is measured here where ``recognize`` works: each file's threshold
placed among strangers who share one camera (``same_setting.py``'s rules, on the same even CelebA identities), then
FAR and TAR there on ORL, LFW and the odd CelebA identities under every condition and shared camera, beside the
threshold-free TAR at FAR 1e-3 and ROC AUC; latency of both files side by side in one ``edgeface bench`` run.
The in-file flip's rows: ``same_setting.py --models FILE --conditions --out same_setting_flip_in_file.json``; the
shipped default's: ``results/same_setting.json``.
-> results/flip_templates.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, edgeface_json, save
from port_robustness import with_gates

from edgeface.default_model import resolve_model
from edgeface.files import read_json
from edgeface.manifest import load_manifest

FIGURES = (("far", "after/far"), ("tar", "after/tar"), ("tar_at_far_1e-3", "tar_at_far_1e-3"),
           ("roc_auc", "roc_auc"))


def figure(row: dict, path: str) -> float | None:
    for key in path.split("/"):
        row = row.get(key) if isinstance(row, dict) else None
    return row  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flip-file", type=Path,
                        default=Path.home() / ".cache/edgeface/dlib-robust-tail-wise30-flip/edgeface-int8.tflite",
                        help="the default's network flip-averaged inside the file (recipes/weight_average.py "
                             "--alpha 0.3 --run dlib-robust-tail-wise30 writes it)")
    parser.add_argument("--workers", type=int, default=2, choices=range(1, 5))
    args = parser.parse_args()
    started = time.time()
    if not args.flip_file.is_file():
        raise SystemExit(f"{args.flip_file} not found: python benchmarks/recipes/dlib_default.py --export-only --flip "
                         "--run dlib-robust-tail-wise30 --model ~/.cache/edgeface/dlib-robust-tail-wise30/model.keras")
    shipped = Path(resolve_model("default"))
    with_gates(args.flip_file, load_manifest(shipped).gates)
    out = "same_setting_flip_in_file.json"
    subprocess.run([sys.executable, str(Path(__file__).with_name("same_setting.py")), "--models", str(args.flip_file),
                    "--workers", str(args.workers), "--skip-lfw", "--conditions", "--out", out], check=True)
    flip_run = read_json(RESULTS / out)
    flip_rows = {r["set"]: r for r in flip_run["rows"]}
    ours = read_json(RESULTS / "same_setting.json")
    rows = []
    for mine in (r for r in ours["rows"] if r["model"] == "default"):
        theirs = flip_rows.get(mine["set"])
        if theirs is None:
            continue
        row: dict = {"set": mine["set"], "turned_away": mine["turned_away"]}
        for name, path in FIGURES:
            row[f"templates_{name}"], row[f"in_file_{name}"] = figure(mine, path), figure(theirs, path)
        rows.append(row)
    bench = edgeface_json("bench", str(shipped), str(args.flip_file), "--runs", "300", "--warmup", "30")
    latency = {("templates" if Path(r["model"]).resolve() == shipped.resolve() else "in_file"): r["p50_ms"]
               for r in bench}  # one list, one run: the two files timed side by side
    save("flip_templates.json", {
        "files": {"templates": str(shipped), "in_file": str(args.flip_file)},
        "thresholds": {"templates": ours["placements"]["default"]["after"],
                       "in_file": next(iter(flip_run["placements"].values()))["after"]},
        "lfw": ours["lfw_flip"], "latency_p50_ms": latency,
        "speedup": latency["in_file"] / latency["templates"], "rows": rows}, started)


if __name__ == "__main__":
    main()
