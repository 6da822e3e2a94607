"""Strangers in the same room: how many impostors each shipped model lets through at its stored threshold when
every face is seen through one camera, and what one-pass probes against flip-averaged templates cost on LFW.

    python benchmarks/same_setting.py [--models default,single,fast,small] [--workers 1]

Why: LFW's impostor pairs come from different photos, cameras and years, so its FAR (the stored threshold is placed
at 1e-3 over all 29.6 M cross-identity pairs) says little about a door camera, where every stranger shares the
enrolled people's lens, light and background (issue #40 measured 3.5x to 16x more impostors there). Sets:

* ``orl``: ORL, 40 people x 10 photos, one setting (note: ORL is in the default's training data);
* ``celeba-<camera>``: the CelebA subset (299 people) re-rendered through one shared camera: the same look applied
  to every photo (``CAMERAS``), so impostors share light, noise and compression as they would at one door. Split by
  identity: the even identity ids are the ``tune`` half (where a threshold may be placed), the odd ones ``held``
  (where it is judged), so a threshold is never scored on the pairs that placed it.

For each model and set: all-pairs FAR and TAR at the model's stored threshold, the threshold for FAR 1e-3 on the tune
half and the FAR/TAR it gives on the held half, and (``gated``) the FAR and TAR when faces outside the model's light
gates are never named (over every pair, and among the faces kept), with the share turned away. LFW View 2: 10-fold
accuracy, AUC and all-pairs FAR at the stored threshold for flip-averaged (the ``default`` file), one-pass
(``single``) and the asymmetric mix (one side of every pair flip-averaged, as an enrolled template would be; the
other one pass, as a probe).
-> results/same_setting.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import CELEBA, DATA, LFW, PAIRS, RESULTS, save

from edgeface.evaluate.lfw import parse_pairs
from edgeface.evaluate.metrics import all_pairs_thresholds, roc_auc, verification_report
from edgeface.evaluate.same_setting import SHARED_CAMERAS
from edgeface.files import read_json
from edgeface.vision.embed import decision_threshold, load_embedder
from edgeface.vision.embedding_cache import embed_paths
from edgeface.vision.quality import Gates

CAMERAS = SHARED_CAMERAS  # one shared look per set: edgeface.evaluate.same_setting


def celeba() -> tuple[list[Path], np.ndarray]:
    rows = [line.split() for line in (CELEBA / "identities.txt").read_text().splitlines() if line.strip()]
    return [CELEBA / "images" / name for name, _ in rows], np.array([int(i) for _, i in rows])


def orl() -> tuple[list[Path], np.ndarray]:
    paths = sorted((DATA / "orl").glob("s*/*.png"))
    return paths, np.array([int(p.parent.name[1:]) for p in paths])


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def setting_row(vectors: np.ndarray, ids: np.ndarray, threshold: float, split: bool) -> dict:
    row = {"all": all_pairs_thresholds(vectors, ids, at=threshold)}
    if split:
        tune, held = ids % 2 == 0, ids % 2 == 1
        placed = all_pairs_thresholds(vectors[tune], ids[tune])["threshold_at_far"]["0.001"]
        row["tune_threshold_far_1e-3"] = placed
        row["held_at_tuned"] = {k: v for k, v in all_pairs_thresholds(vectors[held], ids[held], at=placed).items()
                                if k.endswith("model_threshold")}
        row["held_at_stored"] = {k: v for k, v in all_pairs_thresholds(vectors[held], ids[held], at=threshold).items()
                                 if k.endswith("model_threshold")}
    return row


def lfw_rows(workers: int) -> dict:
    pairs = parse_pairs(PAIRS)
    paths = [LFW / name for name in pairs.images]
    ids = np.array([name.split("/")[0] for name in pairs.images])
    flip, _ = embed_paths(paths, load_embedder("default"), workers=workers, group="lfw", description="lfw default")
    one, _ = embed_paths(paths, load_embedder("single"), workers=workers, group="lfw", description="lfw single")
    flip, one = unit(flip), unit(one)
    threshold = decision_threshold(load_embedder("default"))
    out = {}
    for name, (a, b) in {"both_flip": (flip, flip), "both_single": (one, one), "template_flip_probe_single":
                         (flip, one)}.items():
        scores = np.sum(a[pairs.left] * b[pairs.right], axis=1)
        # and the other way round, so neither side of the protocol is privileged
        if a is not b:
            scores = 0.5 * (scores + np.sum(b[pairs.left] * a[pairs.right], axis=1))
        report = verification_report(scores, pairs.same, pairs.fold)
        out[name] = {"accuracy": report["accuracy"], "se": report["accuracy_se"],
                     "roc_auc": roc_auc(scores, pairs.same),
                     "tar_at_far_1e-3": report["tar_at_far"]["0.001"]}
    # all pairs at the stored threshold: templates flip-averaged, probes one pass (the asymmetric matrix)
    scores_far = []
    for start in range(0, len(one), 1024):
        block = one[start:start + 1024] @ flip.T
        same = ids[start:start + 1024, None] == ids[None, :]
        scores_far.append((block[~same] >= threshold).mean())
    out["template_flip_probe_single"]["far_at_stored_threshold_all_pairs"] = float(np.mean(scores_far))
    out["stored_threshold"] = threshold
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="default,single,fast,small")
    parser.add_argument("--cameras", default=",".join(CAMERAS))
    parser.add_argument("--workers", type=int, default=1, choices=range(1, 5))
    parser.add_argument("--skip-lfw", action="store_true")
    args = parser.parse_args()
    started = time.time()
    rows = []
    # --skip-lfw keeps the LFW flip measurement already made (nothing this run measures changes it)
    earlier = RESULTS / "same_setting.json"
    earlier_flip = read_json(earlier).get("lfw_flip") if earlier.is_file() else None
    celeba_paths, celeba_ids = celeba()
    orl_paths, orl_ids = orl()
    for model in args.models.split(","):
        embedder = load_embedder(model)
        threshold = decision_threshold(embedder)
        gates = Gates.from_manifest(embedder.manifest.gates if embedder.manifest else None)
        sets = {"orl": (orl_paths, orl_ids, None, False)}
        sets |= {f"celeba-{c}": (celeba_paths, celeba_ids, CAMERAS[c], True) for c in args.cameras.split(",")}
        for name, (paths, ids, transform, split) in sets.items():
            t = time.time()
            vectors, fell_back, measures = embed_paths(paths, embedder, workers=args.workers,
                                                       group=f"same-setting/{name}", description=f"{model} {name}",
                                                       transform=transform, with_measures=True)
            vectors = unit(vectors)
            row = {"model": model, "set": name, "stored_threshold": threshold, "images": len(paths),
                   "no_face_found": int(sum(fell_back)), **setting_row(vectors, ids, threshold, split)}
            if gates.active:  # what recognize does: faces outside the model's light gates are never named
                kept = gates.passed(measures)
                at = all_pairs_thresholds(vectors[kept], ids[kept], at=threshold)
                everyone = row["all"]
                # over every pair (a pair with a turned-away face is never a match), and among the faces kept
                row["gated"] = {"gates": gates.to_dict(), "turned_away": float(1 - kept.mean()),
                                "far_at_model_threshold": at["far_at_model_threshold"] * at["impostor_pairs"]
                                / everyone["impostor_pairs"],
                                "tar_at_model_threshold": at["tar_at_model_threshold"] * at["genuine_pairs"]
                                / everyone["genuine_pairs"],
                                "far_among_kept": at["far_at_model_threshold"],
                                "tar_among_kept": at["tar_at_model_threshold"]}
            genuine = ids[:, None] == ids[None, :]
            upper = np.triu(np.ones_like(genuine), 1)
            sims = vectors @ vectors.T
            row["roc_auc"] = roc_auc(sims[upper], genuine[upper]) if len(ids) <= 6400 else None
            row["seconds"] = round(time.time() - t, 1)
            print(model, name, f"FAR@stored {row['all']['far_at_model_threshold']:.5f}",
                  f"TAR {row['all']['tar_at_model_threshold']:.4f}", flush=True)
            rows.append(row)
            save("same_setting.json", {"rows": rows, "lfw_flip": earlier_flip}, started)  # progress so far
    payload = {"rows": rows, "lfw_flip": earlier_flip if args.skip_lfw else lfw_rows(args.workers)}
    save("same_setting.json", payload, started)


if __name__ == "__main__":
    main()
