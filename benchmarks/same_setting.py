"""Strangers in the same room: how many impostors each shipped model lets through at its threshold when every face
is seen through one camera; where the threshold must sit to keep its promise there, and what that costs.

    python benchmarks/same_setting.py [--models default,fast,small] [--workers 1] [--install]
                                      [--conditions [--harsh-only]] [--skip-lfw] [--out same_setting.json]

Why: LFW's impostor pairs come from different photos, cameras and years, so its FAR (the LFW threshold is placed at
1e-3 over all 29.6 M cross-identity pairs) says little about a door camera, where every stranger shares the enrolled
people's lens, light and background (issue #40 measured 3.5x to 16x more impostors there). Sets:

* ``celeba-<camera>``: the CelebA subset (299 people) re-rendered through one shared camera: the same look applied to
  every photo (``edgeface.evaluate.same_setting.SHARED_CAMERAS``: plain, ir-night, side-light, hallway), so
  impostors share light, noise and compression as they would at one door. Split by identity: the even identity ids
  are the ``tune`` half, where the threshold is placed (``setting_threshold``: FAR <= 1e-3 through the plain camera,
  <= 3e-3 through each harsh one, among the faces the light gates keep); the odd ones are judged here, never tuned on;
* ``orl``: ORL, 40 people x 10 photos, one real setting, never tuned on (note: in the default's training data);
* ``lfw``: the 7,701 View 2 images, every cross-identity pair: what the raised threshold costs on photos of one
  person taken years apart; with ``--conditions`` also ``lfw-<condition>`` under every ``eval --condition``.

``--models dlib`` (the original network that ``default`` was ported from, with its own alignment and no light
gates) is placed by the same rules on the same faces, its LFW threshold measured here: the peer to beat
(``--out same_setting_dlib.json``).

Each row: the share of faces the model's light gates turn away (never named) and, among the faces kept, FAR and TAR
at the LFW threshold (``before``) and at the placed one (``after``), the threshold for FAR 1e-3 there and the ROC
AUC. ``--install`` raises each shipped file's stored threshold (and its float twin's, placed on its own embeddings)
to the placed one. Where a model's templates are flip-averaged (``templates: flip``: the default), every row scores
one-pass probes against them, as ``recognize`` compares. LFW View 2 10-fold (``lfw_flip``, skipped with
``--skip-lfw``): the default's network flip-averaged on both sides, one pass on both, and the mix that ships.
-> results/same_setting.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import CELEBA, DATA, LFW, PAIRS, RESULTS, in_tune_half, save

from edgeface.default_model import FLOAT_TWINS, resolve_model
from edgeface.evaluate.lfw import parse_pairs
from edgeface.evaluate.metrics import all_pairs_thresholds, roc_auc, verification_report
from edgeface.evaluate.same_setting import SHARED_CAMERAS, setting_threshold, setting_views, store_setting_threshold
from edgeface.files import read_json
from edgeface.vision.condition_names import CONDITIONS, HARSH_CONDITIONS
from edgeface.vision.conditions import condition_transform
from edgeface.vision.detector_options import DEFAULT_DETECTOR
from edgeface.vision.embed import decision_threshold, l2_normalise, load_embedder, manifest_gates
from edgeface.vision.embedding_cache import embed_paths, embed_sides
from edgeface.vision.quality import Gates

CAMERAS = SHARED_CAMERAS  # one shared look per set: edgeface.evaluate.same_setting
TUNED_ON = "benchmarks/same_setting.py: the even CelebA identities through every shared camera"


def celeba() -> tuple[list[Path], np.ndarray]:
    rows = [line.split() for line in (CELEBA / "identities.txt").read_text().splitlines() if line.strip()]
    return [CELEBA / "images" / name for name, _ in rows], np.array([int(i) for _, i in rows])


def orl() -> tuple[list[Path], np.ndarray]:
    paths = sorted((DATA / "orl").glob("s*/*.png"))
    return paths, np.array([int(p.parent.name[1:]) for p in paths])


def judged(vectors: np.ndarray, ids: np.ndarray, kept: np.ndarray, thresholds: dict[str, float],
           templates: np.ndarray | None = None) -> dict:
    """Among the faces the gates keep: FAR and TAR at each named threshold, the FAR 1e-3 threshold, the ROC AUC;
    probes against ``templates`` where the model makes them otherwise (every ordered pair)."""
    v, i = vectors[kept], ids[kept]
    t = None if templates is None else templates[kept]
    row: dict = {"faces": len(ids), "turned_away": float(1 - kept.mean())}
    if len(np.unique(i)) < 2:  # (nearly) every face turned away: nobody can be named, so nobody wrongly
        return row | {name: {"threshold": t, "far": 0.0, "tar": 0.0} for name, t in thresholds.items()} | {
            "impostor_pairs": 0, "genuine_pairs": 0, "threshold_at_far_1e-3": None, "tar_at_far_1e-3": None,
            "roc_auc": None}
    for name, threshold in thresholds.items():
        at = all_pairs_thresholds(v, i, fars=(1e-3,), at=threshold, templates=t)
        row[name] = {"threshold": threshold, "far": at["far_at_model_threshold"], "tar": at["tar_at_model_threshold"]}
    row |= {"impostor_pairs": at["impostor_pairs"], "genuine_pairs": at["genuine_pairs"],
            "threshold_at_far_1e-3": at["threshold_at_far"]["0.001"], "tar_at_far_1e-3": at["tar_at_far"]["0.001"]}
    row["roc_auc"] = None  # every pair in memory at once: the sets up to CelebA's held half, not LFW's 7,701
    if len(i) <= 6400 and at["genuine_pairs"]:
        genuine = i[:, None] == i[None, :]
        trials = np.triu(np.ones_like(genuine), 1) if t is None else ~np.eye(len(i), dtype=bool)
        row["roc_auc"] = roc_auc((v @ (v if t is None else t).T)[trials], genuine[trials])
    return row


def lfw_images() -> tuple[list[Path], np.ndarray]:
    names = sorted(set(parse_pairs(PAIRS).images))
    return [LFW / name for name in names], np.array([name.split("/")[0] for name in names])


def lfw_rows(workers: int) -> dict:
    """The default's network on LFW View 2 three ways: both photos flip-averaged, both one pass, and as it ships
    (flip-averaged templates against one-pass probes, each pair both ways, as ``edgeface eval`` scores it)."""
    pairs = parse_pairs(PAIRS)
    paths = [LFW / name for name in pairs.images]
    ids = np.array([name.split("/")[0] for name in pairs.images])
    embedder = load_embedder("default")
    sides = embed_sides(paths, embedder, workers=workers, group="lfw", description="lfw")
    one, flip = sides.probes, sides.templates  # the default's templates: flip-averaged
    threshold = decision_threshold(embedder)
    out = {}
    for name, (probes, templates, scored) in {"both_flip": (flip, flip, pairs), "both_single": (one, one, pairs),
                                              "template_flip_probe_single": (one, flip, pairs.both_ways())}.items():
        scores = np.sum(probes[scored.left] * templates[scored.right], axis=1)
        report = verification_report(scores, scored.same, scored.fold)
        at = all_pairs_thresholds(probes, ids, fars=(1e-3,), at=threshold,
                                  templates=None if templates is probes else templates)
        out[name] = {"accuracy": report["accuracy"], "se": report["accuracy_se"], "roc_auc": report["roc_auc"],
                     "tar_at_far_1e-3": report["tar_at_far"]["0.001"],
                     "far_at_stored_threshold_all_pairs": at["far_at_model_threshold"],
                     "tar_at_stored_threshold_all_pairs": at["tar_at_model_threshold"]}
    out["stored_threshold"] = threshold
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="default,fast,small")
    parser.add_argument("--workers", type=int, default=1, choices=range(1, 5))
    parser.add_argument("--install", action="store_true",
                        help="raise each shipped file's stored threshold (and its float twin's) to the placed one")
    parser.add_argument("--skip-lfw", action="store_true", help="keep the LFW View 2 flip measurement already made")
    parser.add_argument("--out", default="same_setting.json", help="results file name (in results/)")
    parser.add_argument("--conditions", action="store_true",
                        help="also LFW under every camera condition (eval --condition), before and after (a peer: "
                             "the harsh ones)")
    parser.add_argument("--harsh-only", action="store_true",
                        help="with --conditions: only the harsh ones (what a peer is judged under)")
    args = parser.parse_args()
    started = time.time()
    earlier = RESULTS / args.out
    earlier_flip = read_json(earlier).get("lfw_flip") if earlier.is_file() else None
    celeba_paths, celeba_ids = celeba()
    tune = in_tune_half(celeba_ids)
    held = ~tune
    tune_paths, held_paths = [p for p, t in zip(celeba_paths, tune, strict=True) if t], \
        [p for p, h in zip(celeba_paths, held, strict=True) if h]
    lfw_paths, lfw_ids = lfw_images()
    sets = {"orl": (orl(), "same-setting/orl", None), "lfw": ((lfw_paths, lfw_ids), "lfw", None)}
    sets |= {f"lfw-{c}": ((lfw_paths, lfw_ids), f"lfw|{LFW.resolve()}|{c}", condition_transform(c, DEFAULT_DETECTOR))
             for c in CONDITIONS if c != "plain"}  # the groups evaluate_lfw caches them under
    sets |= {f"celeba-{c}": ((held_paths, celeba_ids[held]), f"same-setting/celeba-{c}", CAMERAS[c]) for c in CAMERAS}
    models = args.models.split(",")
    if args.install:
        models += [f"{m}-float32" for m in models if m in FLOAT_TWINS]
    placements, rows = {}, []
    for model in models:
        embedder = load_embedder(model)
        manifest = getattr(embedder, "manifest", None)  # a peer (dlib) has none
        earlier_placement = (manifest.metrics.get("same_setting") or {}) if manifest else {}
        peer = manifest is None or manifest.threshold is None
        if peer:  # a peer (dlib): placed here by the same rules, on the same faces
            lfw = l2_normalise(embed_paths(lfw_paths, embedder, workers=args.workers, group="lfw")[0])
            lfw_threshold = all_pairs_thresholds(lfw, lfw_ids, fars=(1e-3,))["threshold_at_far"]["0.001"]
        else:
            lfw_threshold = earlier_placement.get("lfw_threshold", decision_threshold(embedder))
        views = setting_views(embedder, tune_paths, celeba_ids[tune], "same-setting/celeba", workers=args.workers)
        placed = setting_threshold(views)
        after = max(lfw_threshold, placed["threshold"])
        placements[model] = {"lfw_threshold": lfw_threshold, **placed, "after": after}
        if args.install and manifest is not None:
            installed = store_setting_threshold(resolve_model(model), placed, TUNED_ON)
            placements[model]["installed"] = installed
        print(model, f"LFW threshold {lfw_threshold:.4f} -> {after:.4f}", placed["needed"], flush=True)
        if model.endswith("-float32"):
            continue  # placed on its own embeddings; judged through its int8 sibling's rows
        gates = Gates.from_manifest(manifest_gates(embedder))
        for name, ((paths, ids), group, transform) in sets.items():
            if name.startswith("lfw-") and (not args.conditions or ((peer or args.harsh_only)
                                                                     and name[4:] not in HARSH_CONDITIONS)):
                continue  # a peer only under the harsh ones: where fine-tuning may have lost what it had
            sides = embed_sides(paths, embedder, workers=args.workers, group=group, transform=transform,
                                description=f"{model} {name}", with_measures=True)
            row = {"model": model, "set": name, "no_face_found": int(sum(sides.fell_back)),
                   **judged(sides.probes, ids, gates.passed(sides.measures),
                            {"before": lfw_threshold, "after": after}, sides.templates)}
            print(f"  {name}: FAR {row['before']['far']:.5f} -> {row['after']['far']:.5f}, TAR "
                  f"{row['before']['tar']} -> {row['after']['tar']}", flush=True)
            rows.append(row)
            save(args.out, {"placements": placements, "rows": rows, "lfw_flip": earlier_flip}, started)
    payload = {"placements": placements, "rows": rows,
               "lfw_flip": earlier_flip if args.skip_lfw else lfw_rows(args.workers)}
    save(args.out, payload, started)


if __name__ == "__main__":
    main()
