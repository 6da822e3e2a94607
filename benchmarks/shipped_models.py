"""The shipped models as ``edgeface models`` lists them (each file's own manifest: size, LFW View 2 accuracy, TAR at
FAR 1e-3, threshold, GFLOPs) beside the on-paper Raspberry Pi estimate: the source of the README's "which model for
which board" table.

    python benchmarks/shipped_models.py  -> results/shipped_models.json
"""

from __future__ import annotations

import json
import time

from common import RESULTS, edgeface_json, save


def main() -> None:
    started = time.time()
    shipped = edgeface_json("models")["shipped"]
    estimate = json.loads((RESULTS / "pi_estimate.json").read_text())["estimate"]
    for model in shipped:
        for board, rows in estimate.items():
            row = rows.get(f"{model['name'].removesuffix('-float32')} {model['dtype']}")
            if row:
                model[f"ms_per_face {board.split(' (')[0]}"] = round(row["ms_per_face"], 1)
    save("shipped_models.json", {"note": "Raspberry Pi columns: results/pi_estimate.json, an estimate on paper",
                                 "models": shipped}, started)


if __name__ == "__main__":
    main()
