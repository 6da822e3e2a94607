"""Would a threshold that adapts to the camera pay? Score normalisation against the strangers a camera sees, kept as
statistics (the mean of their embeddings), measured against the fixed same-setting threshold that ships.

    python benchmarks/cohort_centring.py [--models default,fast] [--workers 2]

Why (issue #40): strangers who share a camera look more alike, so a fixed threshold either lets them through or is
raised for every camera alike (``benchmarks/same_setting.py``). A camera could instead learn its own world: subtract
the running mean of the faces it has seen (its light, lens and crowd, shared by everyone in front of it) from every
embedding before comparing, with a threshold placed once on LFW centred the same way (LFW's own mean). Nothing to
configure; a 128-number state per camera. Compared on the same faces as ``same_setting.json`` (the odd CelebA
identities through each shared camera, ORL), with the cohort drawn from the *other* people the camera sees (the even
identities; ORL: the other half of its people), of ``--cohort`` sizes, since a home camera sees few strangers:

* ``fixed``: raw cosine at the stored (same-setting) threshold: what ships;
* ``centred``: cosine after subtracting the cohort's mean, at the threshold placed on centred LFW (FAR 1e-3);
* and for each, the TAR at the threshold that gives FAR 1e-3 on these very pairs (an oracle: how well the scores
  separate, whatever the threshold); ``lfw_all_pairs``: LFW's TAR at FAR 1e-3 over all pairs, raw and centred.
-> results/cohort_centring.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import save
from same_setting import CAMERAS, celeba, lfw_images, orl

from edgeface.evaluate.metrics import all_pairs_thresholds
from edgeface.vision.embed import Embedder, decision_threshold, l2_normalise, load_embedder
from edgeface.vision.embedding_cache import embed_sides

COHORTS = (5, 20, 100)  # people in the camera's cohort


def scored(vectors: np.ndarray, ids: np.ndarray, threshold: float, templates: np.ndarray | None = None) -> dict:
    at = all_pairs_thresholds(vectors, ids, fars=(1e-3,), at=threshold, templates=templates)
    return {"threshold": threshold, "far": at["far_at_model_threshold"], "tar": at["tar_at_model_threshold"],
            "oracle_tar_at_far_1e-3": at["tar_at_far"]["0.001"]}


def sides(paths: list, embedder: Embedder, workers: int, group: str, transform=None) -> tuple:
    """Unit probes and unit templates (None: the probes) of ``paths``, as ``recognize`` compares them."""
    done = embed_sides(paths, embedder, workers=workers, group=group, transform=transform)
    return done.probes, done.templates


def centred(vectors: np.ndarray, templates: np.ndarray | None, mean: np.ndarray) -> tuple:
    return l2_normalise(vectors - mean), None if templates is None else l2_normalise(templates - mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="default,fast")
    parser.add_argument("--workers", type=int, default=2, choices=range(1, 5))
    args = parser.parse_args()
    started = time.time()
    rng = np.random.default_rng(0)
    lfw_paths, lfw_ids = lfw_images()
    celeba_paths, celeba_ids = celeba()
    orl_paths, orl_ids = orl()
    rows, lfw_rows = [], {}
    for model in args.models.split(","):
        embedder = load_embedder(model)
        fixed = decision_threshold(embedder)
        lfw, lfw_templates = sides(lfw_paths, embedder, args.workers, "lfw")
        lfw_mean = lfw.mean(axis=0)  # what the camera sees: probes
        centred_probes, centred_templates = centred(lfw, lfw_templates, lfw_mean)
        centred_lfw = all_pairs_thresholds(centred_probes, lfw_ids, fars=(1e-3,), templates=centred_templates)
        centred_threshold = centred_lfw["threshold_at_far"]["0.001"]
        raw_lfw = all_pairs_thresholds(lfw, lfw_ids, fars=(1e-3,), templates=lfw_templates)
        lfw_rows[model] = {"raw_tar_at_far_1e-3": raw_lfw["tar_at_far"]["0.001"],
                           "centred_tar_at_far_1e-3": centred_lfw["tar_at_far"]["0.001"],
                           "centred_threshold": centred_threshold}
        sets = {"orl": (*sides(orl_paths, embedder, args.workers, "same-setting/orl"), orl_ids)}
        for camera in CAMERAS:
            sets[f"celeba-{camera}"] = (*sides(celeba_paths, embedder, args.workers, f"same-setting/celeba-{camera}",
                                               CAMERAS[camera]), celeba_ids)
        for name, (vectors, templates, ids) in sets.items():
            judged, cohort = ids % 2 == 1, ids % 2 == 0
            people = np.unique(ids[cohort])
            held = None if templates is None else templates[judged]
            row = {"model": model, "set": name, "fixed": scored(vectors[judged], ids[judged], fixed, held)}
            row["centred"] = {}  # by the number of people in the camera's cohort
            for size in [*[c for c in COHORTS if c < len(people)], len(people)]:
                chosen = np.isin(ids, rng.choice(people, size, replace=False)) & cohort
                probes, kept = centred(vectors[judged], held, vectors[chosen].mean(axis=0))
                row["centred"][str(size)] = scored(probes, ids[judged], centred_threshold, kept)
            row["centred_all"] = last = row["centred"][str(len(people))]
            rows.append(row)
            print(f"{model} {name}: fixed FAR {row['fixed']['far']:.5f} TAR {row['fixed']['tar']:.3f} | centred FAR "
                  f"{last['far']:.5f} TAR {last['tar']:.3f}", flush=True)
    save("cohort_centring.json", {"cohorts": COHORTS, "lfw_all_pairs": lfw_rows, "rows": rows}, started)


if __name__ == "__main__":
    main()
