"""The shipped models as ``edgeface models`` lists them (each file's own manifest: size, LFW View 2 accuracy, TAR at
FAR 1e-3, threshold, GFLOPs) beside the on-paper Raspberry Pi estimate: the source of the README's "which model for
which board" table.

    python benchmarks/shipped_models.py  -> results/shipped_models.json

The estimate (``pi_estimate.py``) carries this machine's efficiency over to the Pi, and that efficiency depends on
the host it was measured on: the same int8 file read 0.22 of its peak on an Intel Xeon (``pi_estimate_xeon.json``)
and 0.81 on an AMD EPYC (``pi_estimate.json``), a fourfold spread in the Pi figure. A model's row takes, per board,
the slowest estimate of any host for the same work (the same precision and FLOPs, within the 1 % by which a file's
counted ops and its manifest's FLOPs may differ), and names its file.
"""

from __future__ import annotations

import json
import time

from common import RESULTS, edgeface_json, save


def estimates() -> list[tuple[str, dict]]:
    """Every host's estimate rows: (results file, {board: {label: row}})."""
    return [(path.name, json.loads(path.read_text())["estimate"]) for path in sorted(RESULTS.glob("pi_estimate*.json"))]


def main() -> None:
    started = time.time()
    shipped = edgeface_json("models")["shipped"]
    hosts = estimates()
    for model in shipped:
        flops = model["gflops"] * 1e9  # the manifest's count; the estimate counts the file's ops (within 1 %)
        for board in hosts[0][1]:
            same_work = [(row["ms_per_face"], name) for name, estimate in hosts
                         for label, row in estimate.get(board, {}).items()
                         if label.endswith(f" {model['dtype']}") and abs(row["flops"] / flops - 1) < 0.01]
            if same_work:
                ms, source = max(same_work)
                short = board.split(" (")[0]
                model[f"ms_per_face {short}"], model[f"estimate_from {short}"] = round(ms, 1), source
    save("shipped_models.json", {"note": "Raspberry Pi columns: an estimate on paper, the slowest of the hosts' "
                                         "results/pi_estimate*.json for the same precision and FLOPs",
                                 "models": shipped}, started)


if __name__ == "__main__":
    main()
