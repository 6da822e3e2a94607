"""The head-turn limit per model: how far a face may be turned before the model's stored threshold stops holding, and
the limit written into each shipped file's manifest (``gates.max_turn``), where ``recognize``, ``serve``, enrolment
and the API read it.

    python benchmarks/turn_limit.py [--models default,fast,small] [--install]

Why (issue #40): the library's limit (1.2, ``DEFAULT_MAX_TURN``) was placed by eye for an earlier model; a turned face
gives every model less to tell people apart by, but not equally. Every face of LFW View 2's 7,701 images and of the
6,300 CelebA photos is measured as ``recognize`` measures it (``FaceFinder.turn``: YuNet's points, BlazeFace's where
YuNet is unsure), then binned by turn. For each bin: the FAR at the model's stored threshold of its faces against
every other person's face of the same set (among the faces the light gates keep), and the TAR of their genuine pairs.
The limit is the upper edge of the last bin, counted from frontal, whose FAR stays at or under 3e-3 (what a held
threshold allows under a camera condition) with at least ``--min-faces`` faces to show it; a bin with fewer cannot
vouch for anything and stops the count. At most ``--max-plain`` (5 %) of plain LFW faces may be turned away.
-> results/turn_limit.json
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
from common import install_gates, save
from same_setting import celeba, lfw_images

from edgeface.evaluate.same_setting import CAMERA_FAR
from edgeface.progress import track
from edgeface.vision.detect import FaceFinder, main_face
from edgeface.vision.detector_options import DEFAULT_MAX_TURN
from edgeface.vision.embed import decision_threshold, load_embedder, manifest_gates
from edgeface.vision.embedding_cache import KeyedArrayCache, cache_file, embed_sides, file_signature
from edgeface.vision.image import read_image
from edgeface.vision.quality import Gates

EDGES = (0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.5, np.inf)


def turns(paths: list[Path], group: str) -> np.ndarray:
    """Each photo's main face's head turn as ``recognize`` measures it (cached); inf where no face is found."""
    finder = FaceFinder()
    cache = KeyedArrayCache(cache_file("turns", f"{finder.id}|{group}"))
    out = np.empty(len(paths))
    for k, path in enumerate(track(paths, description=f"head turn, {group}")):
        key = file_signature(path)
        if cache.get(key) is None:
            image = read_image(path)
            faces = finder.find(image)
            cache.put(key, np.array([finder.turn(image, main_face(faces, image.shape)) if faces else np.inf]))
        out[k] = float(cache.get(key)[0])
    cache.save()
    return out


def by_turn(vectors: np.ndarray, ids: np.ndarray, turn: np.ndarray, threshold: float,
            templates: np.ndarray | None = None) -> list[dict]:
    """Per turn bin: FAR of its faces (as probes) against every other person's face (as a template, when the model
    makes templates otherwise), TAR of its genuine pairs."""
    templates = vectors if templates is None else templates
    rows = []
    for low, high in itertools.pairwise(EDGES):
        inside = np.flatnonzero((turn >= low) & (turn < high))
        if len(inside) == 0:
            rows.append({"from": low, "to": high, "faces": 0, "far": None, "tar": None})
            continue
        scores = vectors[inside] @ templates.T
        same = ids[inside][:, None] == ids[None, :]
        itself = inside[:, None] == np.arange(len(ids))[None, :]
        impostor, genuine = scores[~same], scores[same & ~itself]
        rows.append({"from": low, "to": high, "faces": len(inside), "impostor_pairs": len(impostor),
                     "far": float((impostor >= threshold).mean()),
                     "tar": float((genuine >= threshold).mean()) if len(genuine) else None})
    return rows


def choose(bins: dict[str, list[dict]], lfw_turn: np.ndarray, min_faces: int, max_plain: float) -> float:
    """The upper edge of the last bin from frontal that holds in every set, limited by the plain-LFW share."""
    limit = EDGES[0]
    for k in range(len(EDGES) - 2):  # the last bin is profiles: a limit is finite
        rows = [b[k] for b in bins.values()]
        if sum(r["faces"] for r in rows) < min_faces or any(r["far"] is not None and r["far"] > CAMERA_FAR
                                                            for r in rows):
            break
        limit = EDGES[k + 1]
    # the plain-LFW bound: never turn away more than max_plain of LFW's faces
    while limit < EDGES[-2] and np.mean(lfw_turn[np.isfinite(lfw_turn)] > limit) > max_plain:
        limit = EDGES[EDGES.index(limit) + 1]
    return float(limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="default,fast,small")
    parser.add_argument("--min-faces", type=int, default=30)
    parser.add_argument("--max-plain", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2, choices=range(1, 5))
    parser.add_argument("--install", action="store_true", help="write each limit into the shipped manifests")
    args = parser.parse_args()
    started = time.time()
    sets = {"lfw": (*lfw_images(), "lfw"), "celeba": (*celeba(), "same-setting/celeba-plain")}
    measured = {name: turns(paths, group) for name, (paths, _, group) in sets.items()}
    chosen, rows = {}, []
    for model in args.models.split(","):
        embedder = load_embedder(model)
        threshold = decision_threshold(embedder)
        gates = Gates.from_manifest(manifest_gates(embedder))
        bins = {}
        for name, (paths, ids, group) in sets.items():
            sides = embed_sides(paths, embedder, workers=args.workers, group=group, description=f"{model} {name}",
                                with_measures=True)
            kept = gates.passed(sides.measures) & np.isfinite(measured[name])
            bins[name] = by_turn(sides.probes[kept], np.asarray(ids)[kept], measured[name][kept],
                                 threshold, None if sides.templates is None else sides.templates[kept])
            rows += [{"model": model, "set": name, "threshold": threshold, **row} for row in bins[name]]
        limit = choose(bins, measured["lfw"], args.min_faces, args.max_plain)
        chosen[model] = {"max_turn": limit, "library_default": DEFAULT_MAX_TURN,
                         "lfw_turned_away": float(np.mean(measured["lfw"][np.isfinite(measured["lfw"])] > limit))}
        if args.install:
            source = (f"benchmarks/turn_limit.py: FAR <= {CAMERA_FAR:g} at the stored threshold in every turn bin up "
                      f"to {limit:g} on LFW View 2 and CelebA")
            chosen[model]["installed"] = install_gates(model, {"max_turn": limit, "turn_source": source})
        print(model, chosen[model], flush=True)
    save("turn_limit.json", {"edges": [e if np.isfinite(e) else None for e in EDGES], "far": CAMERA_FAR,
                             "min_faces": args.min_faces, "chosen": chosen,
                             "rows": [{**r, "to": r["to"] if np.isfinite(r["to"]) else None} for r in rows]},
         started)


if __name__ == "__main__":
    main()
