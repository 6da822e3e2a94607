"""Gallery size against match time, load time and memory: 1k / 10k / 100k / 1M templates of random unit vectors.

From 20k templates on, with faiss-cpu installed (``pip install 'edgeface[large-gallery]'``), the gallery matches
through a float16 faiss index and re-scores candidates in float32 until an error bound proves the winner; the
``--no-faiss`` run shows what plain numpy costs.

For each size: build a real SQLite gallery (one transaction), open it fresh and time the first ``templates()`` load
(what ``recognize`` pays at start-up), time ``match`` for one face at a time (median of 300 queries, one BLAS
thread), and check it against a brute-force top-1 on the same vectors (exact: it must agree on every query).
Also the start-up of a real ``edgeface recognize`` on one photo against the 100k gallery.

    python benchmarks/gallery_scale.py [--sizes 1000,10000,100000,1000000]
-> results/gallery_scale.json
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core, like the frame loop on a board
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from common import SHARED, save

from edgeface.recognize.gallery import Gallery
from edgeface.vision.embed import l2_normalise

DIM = 128
PER_PERSON = 2


def fill(path: Path, size: int, model: str, rng: np.random.Generator) -> float:
    gallery = Gallery(path, model, DIM)
    started = time.perf_counter()
    vectors = l2_normalise(rng.normal(size=(size, DIM)))
    now = time.time()
    with gallery.transaction():
        gallery.db.executemany("INSERT INTO people (id, name, created) VALUES (?, ?, ?)",
                               [(i + 1, f"person {i:07d}", now) for i in range(size // PER_PERSON)])
        gallery.db.executemany("INSERT INTO templates (person_id, embedding, created) VALUES (?, ?, ?)",
                               [(i // PER_PERSON + 1, v.tobytes(), now) for i, v in enumerate(vectors)])
    gallery.close()
    return time.perf_counter() - started


def measure(size: int, model: str, rng: np.random.Generator, folder: Path) -> dict:
    path = folder / f"g{size}.sqlite"
    insert_s = fill(path, size, model, rng)
    gallery = Gallery(path, create=False)
    t = time.perf_counter()
    emb, owner, names = gallery.templates()
    load_s = time.perf_counter() - t
    queries = l2_normalise(emb[rng.integers(0, size, 300)] + 0.3 * rng.normal(size=(300, DIM)).astype(np.float32))
    times = []
    agree = 0
    for q in queries:
        t = time.perf_counter()
        match = gallery.match(q[None], 0.5)[0]
        times.append(time.perf_counter() - t)
        truth = names[int(owner[int(np.argmax(emb @ q))])]
        agree += match.person == truth
    gallery.close()
    return {"templates": size, "people": size // PER_PERSON, "insert_s": round(insert_s, 2),
            "load_s": round(load_s, 3), "match_ms_per_face_p50": round(1e3 * float(np.median(times)), 3),
            "match_ms_per_face_p90": round(1e3 * float(np.percentile(times, 90)), 3),
            "index": "faiss float16 + exact float32 re-score" if gallery._index is not None else "numpy float32",
            "bytes_per_template_in_memory": int(emb.nbytes // size) + (2 * DIM if gallery._index is not None else 0),
            "file_bytes_per_template": int(path.stat().st_size // size), "exact_top1_agreement": agree / len(queries),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def recognize_startup(folder: Path, model_sha: str) -> dict:
    """Wall time of ``edgeface recognize`` on one photo against the 100k gallery (start-up dominates)."""
    path = folder / "g100000.sqlite"
    photo = SHARED / "data" / "media" / "probes" / "obama3.jpg"
    if not path.exists() or not photo.exists():
        return {}
    cmd = [sys.executable, "-m", "edgeface", "recognize", "--source", str(photo), "--gallery", str(path), "--json"]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        return {"error": done.stderr.strip()[:200]}
    summary = json.loads(done.stdout.splitlines()[-1])["summary"]
    return {"command": "edgeface recognize --source obama3.jpg --gallery <100k gallery> --json",
            "wall_s": round(wall, 2), "match_ms": summary["stages"].get("match", {}).get("mean_ms")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--no-faiss", action="store_true", help="match with numpy only, for comparison")
    args = parser.parse_args()
    if args.no_faiss:
        import edgeface.recognize.match as match_module

        match_module.FAST_INDEX_MIN = 10**12
    started = time.time()
    from edgeface.vision.embed import load_embedder

    model_sha = load_embedder(None).sha256  # the shipped model's identity, so recognize can open the gallery
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            row = measure(size, model_sha, rng, Path(tmp))
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
        startup = recognize_startup(Path(tmp), model_sha)
    name = "gallery_scale_numpy.json" if args.no_faiss else "gallery_scale.json"
    save(name, {"dim": DIM, "blas_threads": 1, "results": rows, "recognize_100k": startup,
                                "target": "100k templates: at most 2 ms per face"}, started)


if __name__ == "__main__":
    main()
