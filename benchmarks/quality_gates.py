"""Light gates per model: the darkest, most unevenly lit and blurriest faces each shipped model may still be asked to
name, calibrated on LFW View 2 under every condition (plain, the held ones, and the harsh ``shadow``, ``dark``,
``nir``), then stored in the model's manifest (``gates``), where ``recognize``, ``serve`` and the API read them.

    python benchmarks/quality_gates.py [--models default,fast,small] [--install]

Conditions: LFW View 2 as it is and under every ``eval --condition``, and (``--cameras``, on by default) the even
CelebA identities through each shared camera of ``benchmarks/same_setting.py`` (``camera-<name>``): strangers who share
one camera, where a limit on soft faces matters most.
For each model, every image's chip is measured (``vision.quality.face_measures``: brightness, unevenness,
sharpness, grain) and embedded under each condition (cached). Each candidate set of limits (a grid)
turns away the faces outside them; a pair with a turned-away face is never a match, as in ``recognize``. The chosen
limits:

* turn away at most ``--max-plain`` (5 %) of plain LFW faces, and of the adult UTKFace faces of every skin group
  (brightness is also skin: LFW is mostly light-skinned), and
* hold the FAR at the model's stored threshold at or under ``--far`` (3e-3, what a held threshold allows under a
  camera condition) over all 29.6 M cross-identity pairs (a turned-away face is never named) and among the faces the
  gates keep, wherever they are enough to measure it (``judged_far``), under as many conditions as any limits can,
* where a condition cannot be held, come as close as any limits can (the least excess FAR over every pair, on a log
  scale, to within about 10 %),
* and among those, keep the most genuine matches (mean TAR over the conditions).

The before/after table (FAR and TAR over every pair, the share turned away and why, and the FAR among the faces the
gates keep: how alike those still look) -> results/quality_gates.json. ``--install`` writes the gates into the
shipped files' manifests (and the float twins', which share their network).
"""

from __future__ import annotations

import argparse
import itertools
import time

import cv2
import numpy as np
from common import DATA, LFW, PAIRS, in_tune_half, install_gates, save
from same_setting import celeba

from edgeface.default_model import resolve_model
from edgeface.evaluate.lfw import evaluate_lfw, turned_away_by
from edgeface.evaluate.same_setting import SHARED_CAMERAS
from edgeface.vision.condition_names import CONDITIONS
from edgeface.vision.embed import decision_threshold, load_embedder
from edgeface.vision.embedding_cache import embed_sides
from edgeface.vision.quality import LIMITS, Gates

BRIGHTNESS = (None, 20, 30, 40, 50, 60, 70)
UNEVENNESS = (None, 0.7, 0.6, 0.5)  # under 0.5, photos by a window are turned away (a demo probe measures 0.42)
SHARPNESS = (None, 5, 10, 20, 40)
GRAIN = (None, 3.0, 2.5, 2.0)  # clean photos read up to 1.3 (vision.quality.grain), a dim room's grain 2.3-6
RETIRED = ("max_sharpness",)  # limits once installed and no longer measured: removed from the manifests on --install
GROUPS = {0: "White", 1: "Black", 2: "Asian", 3: "Indian", 4: "Others"}  # UTKFace's race field, as its names give it
GROUP_FACES = 3000  # adult UTKFace faces measured for the per-group bound (a seeded draw)


class AllPairs:
    """Every pair of one condition's images at the model's threshold, kept so that any set of limits is scored in
    milliseconds: the impostor pairs it accepts (two index arrays) and every genuine pair with its decision. A
    turned-away face is never named, so a pair with one is never a match."""

    def __init__(self, embeddings: np.ndarray, people: np.ndarray, threshold: float, block: int = 1024,
                 templates: np.ndarray | None = None) -> None:
        self.ids = np.unique(people, return_inverse=True)[1]
        self.ordered = templates is not None  # probes against templates: (i, j) and (j, i) both compared
        n = len(self.ids)
        accepted, genuine = [], []
        columns = np.arange(n)
        other = embeddings if templates is None else templates
        for start in range(0, n, block):
            rows = columns[start:start + block]
            scores = embeddings[rows] @ other.T
            upper = columns[None, :] != rows[:, None] if self.ordered else columns[None, :] > rows[:, None]
            same = self.ids[rows][:, None] == self.ids[None, :]
            i, j = np.nonzero(upper & ~same & (scores >= threshold))
            accepted.append((rows[i].astype(np.int32), j.astype(np.int32)))
            gi, gj = np.nonzero(upper & same)
            genuine.append((rows[gi], gj, scores[gi, gj] >= threshold))
        self.accepted = tuple(np.concatenate([a[k] for a in accepted]) for k in range(2))
        self.genuine = tuple(np.concatenate([g[k] for g in genuine]) for k in range(3))

    def impostor_pairs(self, kept: np.ndarray) -> int:
        counts = np.bincount(self.ids, weights=kept.astype(np.float64))
        n = kept.sum()
        return int(n * (n - 1) // 2 - (counts * (counts - 1) // 2).sum()) * (2 if self.ordered else 1)

    def score(self, kept: np.ndarray) -> dict:
        """FAR and TAR over every pair (a pair with a turned-away face is not accepted), and the FAR among the pairs
        of faces kept (how alike the faces the gates let through still look)."""
        i, j = self.accepted
        accepted = int((kept[i] & kept[j]).sum())
        total = self.impostor_pairs(np.ones_like(kept))
        gi, gj, hit = self.genuine
        kept_pairs = self.impostor_pairs(kept)
        return {"far": accepted / total, "tar": float((hit & kept[gi] & kept[gj]).mean()),
                "far_among_kept": accepted / max(kept_pairs, 1), "kept_impostor_pairs": kept_pairs,
                "turned_away": float(1 - kept.mean())}


def judged_far(scored: dict, far: float) -> float:
    """The FAR a face the gates let through meets: over every pair (a turned-away face never named), and among the
    faces kept wherever they are enough to measure it (10 / ``far`` pairs): a dim room's grainy faces let through by
    a brightness limit alone matched 39 % of each other while "every pair" read 0.25 %; but 1 accept in 6 pairs of
    the last few faces kept is noise, not a measurement."""
    among = scored["far_among_kept"] if scored["kept_impostor_pairs"] >= 10 / far else 0.0
    return max(scored["far"], among)


def measure(model: str, conditions: list[str], workers: int) -> tuple[dict[str, dict], dict[str, AllPairs]]:
    """Per condition: the ungated report with its arrays, and its pairs at the model's threshold."""
    embedder = load_embedder(str(resolve_model(model)), threads=1)
    reports, pairs = {}, {}
    for condition in conditions:
        report = evaluate_lfw(embedder, LFW, PAIRS, workers=workers, condition=condition, gates=Gates(),
                              with_measures=True)
        threshold = float(report["model_threshold"])
        reports[condition] = report
        arrays = report["_arrays"]
        pairs[condition] = AllPairs(arrays["embeddings"], arrays["people"], threshold, templates=arrays["templates"])
        print(f"{model} {condition}: accuracy {report['accuracy']:.4f}, all-pairs FAR at threshold "
              f"{pairs[condition].score(np.ones(len(pairs[condition].ids), bool))['far']:.5f}", flush=True)
    return reports, pairs


def shared_cameras(model: str, workers: int) -> tuple[dict[str, dict], dict[str, AllPairs]]:
    """The even CelebA identities through each shared camera (``same_setting.py``'s tune half): strangers who share
    one camera, where soft night and hallway faces meet a model's limits as they do at a door."""
    embedder = load_embedder(str(resolve_model(model)), threads=1)
    threshold = decision_threshold(embedder)
    paths, ids = celeba()
    tune = in_tune_half(ids)
    paths, ids = [p for p, t in zip(paths, tune, strict=True) if t], ids[tune]
    reports, pairs = {}, {}
    for camera, transform in SHARED_CAMERAS.items():
        sides = embed_sides(paths, embedder, workers=workers, group=f"same-setting/celeba-{camera}",
                            transform=transform, description=f"{model} camera {camera}", with_measures=True)
        vectors = sides.probes
        name = f"camera-{camera}"
        reports[name] = {"accuracy": None, "accuracy_se": None, "roc_auc": None, "model_threshold": threshold,
                         "_arrays": {"embeddings": vectors, "templates": sides.templates, "people": ids,
                                     "measures": sides.measures}}
        pairs[name] = AllPairs(vectors, ids, threshold, templates=sides.templates)
    return reports, pairs


def skin_groups(model: str) -> dict[str, np.ndarray]:
    """The light measures of adult UTKFace faces (well-lit photos of every skin tone) per group, on this model's
    chip: brightness is also skin, so no group may be turned away more than plain LFW is."""
    from edgeface.vision.align import align_face
    from edgeface.vision.detect import FaceFinder
    from edgeface.vision.image import read_image
    from edgeface.vision.quality import face_measures

    alignment = load_embedder(str(resolve_model(model)), threads=1).alignment
    finder = FaceFinder(alignment=alignment)
    files = sorted((DATA / "utkface-subset").glob("*.jpg"))
    chosen = np.random.default_rng(20261207).choice(len(files), min(GROUP_FACES, len(files)), replace=False)
    out: dict[str, list] = {}
    for k in chosen:
        age, _, race, *_ = files[k].name.split("_")
        if not (age.isdigit() and race.isdigit()) or int(age) < 16 or int(race) not in GROUPS:
            continue
        image = cv2.copyMakeBorder(read_image(files[k]), 56, 56, 56, 56, cv2.BORDER_CONSTANT)  # tight crops
        faces = finder.find(image)
        if faces:
            out.setdefault(GROUPS[int(race)], []).append(
                face_measures(align_face(image, faces[0], alignment), image, faces[0]))
    return {group: np.stack(rows) for group, rows in sorted(out.items())}


def group_shares(gates: Gates, groups: dict[str, np.ndarray]) -> dict[str, float]:
    """The share of each skin group the brightness and grain limits turn away: the limits judged on these faces
    (UTKFace's crops are 112 px, soft and uneven by their size and cropping, not by their light)."""
    judged = Gates(min_brightness=gates.min_brightness, max_grain=gates.max_grain)
    return {group: float(1 - judged.passed(m).mean()) for group, m in groups.items()}


def choose(reports: dict[str, dict], pairs: dict[str, AllPairs], groups: dict[str, np.ndarray], far: float,
           max_plain: float) -> tuple[Gates, int]:
    """The limits that hold ``far`` (a turned-away face never named) under the most conditions, turning away at most
    ``max_plain`` of plain faces and of every skin group, closest to it where they cannot, and then with the most
    genuine matches (mean TAR over the conditions); with how many conditions they hold."""
    best, best_key = Gates(), None
    for limits in itertools.product(BRIGHTNESS, UNEVENNESS, SHARPNESS, GRAIN):
        gates = Gates(*limits)
        kept = {c: gates.passed(r["_arrays"]["measures"]) for c, r in reports.items()}
        if 1 - kept["plain"].mean() > max_plain or max(group_shares(gates, groups).values()) > max_plain:
            continue
        scored = {c: pairs[c].score(kept[c]) for c in reports}
        # held: a stranger whose face the gates let through is named wrongly at most ``far`` of the time
        held = sum(judged_far(s, far) <= far for s in scored.values())
        # where no limits hold a condition, the ones that name strangers least often over every pair (a wrong name is
        # worse than no name: turning most such faces away counts even where the few kept still look alike), to
        # within a tenth on the log scale (~10 %): closer than that is noise, not worth genuine matches elsewhere
        excess = sum(np.log(max(s["far"] / far, 1.0)) for s in scored.values())
        key = (held, -round(float(excess), 1), float(np.mean([s["tar"] for s in scored.values()])))
        if best_key is None or key > best_key:
            best, best_key = gates, key
    return best, best_key[0] if best_key else 0


def table(model: str, reports: dict[str, dict], pairs: dict[str, AllPairs], gates: Gates, far: float) -> list[dict]:
    rows = []
    for condition, report in reports.items():
        measures = report["_arrays"]["measures"]
        before = pairs[condition].score(np.ones(len(measures), bool))
        after = pairs[condition].score(gates.passed(measures))
        rows.append({"model": model, "condition": condition, "accuracy": report["accuracy"],
                     "accuracy_se": report["accuracy_se"], "roc_auc": report["roc_auc"],
                     "threshold": report["model_threshold"], "far_before": before["far"], "tar_before": before["tar"],
                     "far_after": after["far"], "tar_after": after["tar"],
                     "far_among_kept": after["far_among_kept"], "turned_away": after["turned_away"],
                     "holds_far": judged_far(after, far) <= far,
                     "turned_away_by": turned_away_by(gates, measures)})
    return rows


def install(model: str, gates: Gates, source: str) -> list[str]:
    """The gates into the shipped file's manifest (and its float twin's), beside the turn limit already there."""
    return install_gates(model, {**{k: v for k, v in gates.to_dict().items() if v is not None},
                                 "light_source": source}, replaces=(*LIMITS, *RETIRED))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="default,fast,small")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--far", type=float, default=3e-3)
    parser.add_argument("--max-plain", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2, choices=range(1, 5))
    parser.add_argument("--install", action="store_true", help="write the chosen gates into the shipped manifests")
    parser.add_argument("--cameras", action=argparse.BooleanOptionalAction, default=True,
                        help="also hold strangers who share one camera (CelebA's tune half through each shared camera)")
    args = parser.parse_args()
    started = time.time()
    conditions = args.conditions.split(",")
    rows, chosen = [], {}
    for model in args.models.split(","):
        reports, pairs = measure(model, conditions, args.workers)
        if args.cameras:
            more = shared_cameras(model, args.workers)
            reports, pairs = reports | more[0], pairs | more[1]
        groups = skin_groups(model)
        gates, held = choose(reports, pairs, groups, args.far, args.max_plain)
        chosen[model] = {"gates": gates.to_dict(), "conditions_held": held, "of": len(reports),
                         "turned_away_by_group": group_shares(gates, groups),
                         "group_faces": {group: len(m) for group, m in groups.items()}}
        rows += table(model, reports, pairs, gates, args.far)
        if args.install:
            chosen[model]["installed"] = install(model, gates, f"benchmarks/quality_gates.py: FAR <= {args.far:g} "
                                                 "over every pair and among the faces kept under "
                                                 f"{held} of {len(reports)} conditions, <= "
                                                 f"{args.max_plain:.0%} of plain LFW and of every skin group turned "
                                                 "away")
        print(model, chosen[model], flush=True)
    save("quality_gates.json", {"far": args.far, "max_plain": args.max_plain, "conditions": conditions,
                                "grid": {"min_brightness": BRIGHTNESS, "max_unevenness": UNEVENNESS,
                                         "min_sharpness": SHARPNESS, "max_grain": GRAIN},
                                "chosen": chosen, "rows": rows}, started)


if __name__ == "__main__":
    main()
