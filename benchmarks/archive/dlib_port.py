"""Is the dlib port the same teacher as dlib? Cosine between the two descriptors on 1,000 aligned faces, LFW View 2
for both, and the time per face of each, side by side.

    python benchmarks/archive/dlib_port.py [--faces 1000]

The faces are the first N of the YuNet-prepared CelebA subset (`edgeface data prepare`); both embedders see the
source photo, the stored box and dlib's own 5-point alignment, exactly as `distill` runs a teacher.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import LFW, PAIRS, edgeface_json, save

from edgeface.data.prepare import read_manifest, record_face
from edgeface.training.train.dlib_port import ensure_dlib_port
from edgeface.vision.embed import DlibEmbedder, DlibPortEmbedder
from edgeface.vision.image import read_image

PREPARED = Path.home() / ".cache" / "edgeface" / "prepared-yunet" / "celeba"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1000)
    parser.add_argument("--timed", type=int, default=100, help="faces timed for each embedder")
    parser.add_argument("--prepared", type=Path, default=PREPARED)
    args = parser.parse_args()
    started = time.time()
    records = [r for r in read_manifest(args.prepared) if r.get("status") == "ok"][: args.faces]
    dlib, port = DlibEmbedder(), DlibPortEmbedder(ensure_dlib_port())
    seconds = {"dlib": 0.0, "dlib-port": 0.0}
    cosines = []
    for n, record in enumerate(records):
        image, face = read_image(record["source"]), record_face(record)
        rows = []
        for name, embedder in (("dlib", dlib), ("dlib-port", port)):
            t = time.perf_counter()
            rows.append(embedder.embed_faces(image, [face])[0])
            if n < args.timed:
                seconds[name] += time.perf_counter() - t
        cosines.append(float(rows[0] @ rows[1]))
    cos = np.array(cosines)
    ms = {k: 1000 * v / min(args.timed, len(records)) for k, v in seconds.items()}
    lfw = {name: edgeface_json("eval", name, "--lfw-dir", str(LFW), "--pairs", str(PAIRS)) for name in ("dlib",
                                                                                                     "dlib-port")}
    result = {
        "faces": len(records),
        "cosine": {"median": float(np.median(cos)), "mean": float(cos.mean()), "min": float(cos.min()),
                   "p01": float(np.percentile(cos, 1)), "below_0.99": int((cos < 0.99).sum())},
        "ms_per_face": ms, "speedup": ms["dlib"] / ms["dlib-port"],
        "lfw": {k: {m: v[m] for m in ("accuracy", "accuracy_se", "roc_auc", "tar_at_far")} for k, v in lfw.items()},
    }
    print(f"cosine to dlib over {len(records)} faces: median {result['cosine']['median']:.5f}, min "
          f"{result['cosine']['min']:.5f}; {ms['dlib']:.1f} ms vs {ms['dlib-port']:.1f} ms per face "
          f"({result['speedup']:.1f}x); LFW dlib {100 * lfw['dlib']['accuracy']:.2f} %, port "
          f"{100 * lfw['dlib-port']['accuracy']:.2f} %")
    save("dlib_port.json", result, started)


if __name__ == "__main__":
    main()
