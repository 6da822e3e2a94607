"""Face detectors on generated 1080p camera scenes and on the Hamilton clip: recall by face size, false positives,
milliseconds per frame on one core.

Scenes come from ``edgeface.evaluate.scenes`` (seeded): LFW people pasted at 24-200 px face width onto blurred
mosaics of CelebA photo corners, with per-face blur and light, frame-wide gamma, side light, grey (IR-like) frames,
noise and JPEG. Every detector sees the same frames, in one process pinned to one core (cv2 and LiteRT single
threaded), one after another.

Rows: YuNet as edgeface runs it (two looks: the frame resized to 640, then a closer look at uncertain candidates in
the original frame), the same at 960 and 480, YuNet with one look at 640 (with a sweep of score floors), YuNet on
OpenCV's DNN module (same network: the backend comparison), BlazeFace short and full range, and dlib's HOG detector
with one upsampling (what ``face_recognition.face_locations`` runs by default) as the anchor most users know.

    python benchmarks/detectors.py --scenes 120
-> results/detectors.json, results/detectors_recall.png
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from common import RESULTS, SHARED, save

from edgeface.evaluate.scenes import FACE_BUCKETS, bucket_of, lfw_photos, make_scene, match
from edgeface.progress import progress_bar
from edgeface.vision.detect import create_detector
from edgeface.vision.yunet import YuNet

CLIP = SHARED / "data" / "media" / "short_hamilton_clip.mp4"
# Faces counted by eye on frames of the clip (640x360): frame -> (clearly visible faces, partial or very dim ones).
# 0: the singer and the pianist. 60: the dark audience, blurred: ~8 dim faces plus the singer's cut-off profile at
# the right edge. 120 and 180: the singer alone. 240: four audience faces (a laughing woman, Marian Robinson, Barack
# Obama in profile, Michelle Obama) plus partial faces at the top-left and right edges.
CLIP_BY_EYE = {0: (2, 0), 60: (0, 9), 120: (1, 0), 180: (1, 0), 240: (4, 2)}
SCORE_SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PLOT_BINS = (24, 32, 40, 56, 80, 112, 160, 201)

Detect = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # BGR frame -> (boxes (N, 4), scores (N,))


def edgeface_detector(name: str, detect_size: int = 640, min_score: float | None = None,
                      backend: str | None = None, closer_look: bool = True) -> Detect:
    if name == "yunet":
        detector = YuNet(detect_size=detect_size, backend=backend, closer_look=closer_look,
                         **({} if min_score is None else {"min_score": min_score}))
    else:
        detector = create_detector(name, threads=1, detect_size=detect_size, min_score=min_score)

    def run(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        faces = detector.detect(frame, bgr=True)
        return (np.array([f.box for f in faces], np.float32).reshape(-1, 4),
                np.array([f.score for f in faces], np.float32))

    return run


def dlib_hog() -> Detect:
    import dlib

    detector = dlib.get_frontal_face_detector()

    def run(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rects, scores, _ = detector.run(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), 1, 0.0)
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32).reshape(-1, 4)
        return boxes, np.array(scores, np.float32)

    return run


def score_frames(detect: Detect, scenes: list, min_scores: tuple[float, ...] = (0.0,)) -> dict:
    """Run one detector over every scene: times, and recall/false positives at each score floor."""
    times, per_floor = [], {s: {"hits": [], "widths": [], "false": 0} for s in min_scores}
    for scene in scenes:
        t = time.perf_counter()
        boxes, scores = detect(scene.image)
        times.append(time.perf_counter() - t)
        for floor, acc in per_floor.items():
            keep = scores >= floor
            hit, false = match(scene.boxes, boxes[keep], scores[keep])
            acc["hits"].extend(hit.tolist())
            acc["widths"].extend(scene.widths.tolist())
            acc["false"] += false
    out = {"ms_per_frame_p50": round(1e3 * float(np.median(times)), 2),
           "ms_per_frame_mean": round(1e3 * float(np.mean(times)), 2), "by_score": {}}
    for floor, acc in per_floor.items():
        hits, widths = np.array(acc["hits"]), np.array(acc["widths"])
        buckets = {}
        for low, high in FACE_BUCKETS:
            inside = (widths >= low) & (widths < high)
            buckets[bucket_of(low)] = {"faces": int(inside.sum()),
                                       "recall": round(float(hits[inside].mean()), 4) if inside.any() else None}
        curve = [round(float(hits[(widths >= a) & (widths < b)].mean()), 4) if ((widths >= a) & (widths < b)).any()
                 else None for a, b in itertools.pairwise(PLOT_BINS)]
        big = widths >= 40
        out["by_score"][str(floor)] = {
            "recall_by_width": buckets, "recall_40_plus": round(float(hits[big].mean()), 4),
            "false_positives_per_frame": round(acc["false"] / len(scenes), 4), "curve": curve}
    return out


def clip_frames(limit: int = 0) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    while not limit or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def on_clip(detect: Detect, frames: list[np.ndarray], floor: float) -> dict:
    counts, times = [], []
    for frame in frames:
        t = time.perf_counter()
        _, scores = detect(frame)
        times.append(time.perf_counter() - t)
        counts.append(int((scores >= floor).sum()))
    return {"faces_per_frame": round(float(np.mean(counts)), 3),
            "ms_per_frame_p50": round(1e3 * float(np.median(times)), 2),
            "by_eye_frames": {str(k): counts[k] for k in CLIP_BY_EYE if k < len(counts)}}


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    centres = [(a + b) / 2 for a, b in itertools.pairwise(PLOT_BINS)]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    styles = itertools.cycle([("o", "-"), ("s", "--"), ("^", "-."), ("v", ":"), ("D", "--"), ("x", "-"), ("*", ":")])
    for label, row in rows.items():
        curve = row["scenes"]["by_score"][row["score_floor"]]["curve"]
        marker, line = next(styles)
        ax.plot(centres, [np.nan if c is None else 100 * c for c in curve], marker=marker, linestyle=line,
                label=label, linewidth=3 if "default" in label else 1.3, alpha=0.9)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(PLOT_BINS[:-1], [str(b) for b in PLOT_BINS[:-1]])
    ax.set_xlabel("face width in the 1920x1080 frame (px)")
    ax.set_ylabel("recall (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Face detection recall by face size, generated 1080p scenes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faces", type=int, default=8, help="people per scene")
    parser.add_argument("--skip-dlib", action="store_true")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from results/detectors.json")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads((RESULTS / "detectors.json").read_text())["results"], RESULTS / "detectors_recall.png")
        return
    started = time.time()
    os.sched_setaffinity(0, {0})
    cv2.setNumThreads(1)
    lfw = SHARED / "data" / "lfw" / "lfw-deepfunneled"
    backgrounds = sorted((SHARED / "data" / "celeba-subset" / "images").glob("*.jpg"))
    rng = np.random.default_rng(args.seed)
    photos = lfw_photos(lfw)
    with progress_bar() as bar:
        task = bar.add_task("generating scenes", total=args.scenes)
        scenes = []
        for _ in range(args.scenes):
            scenes.append(make_scene(rng, photos, backgrounds, faces=args.faces))
            bar.advance(task)
    frames = clip_frames()
    candidates: dict[str, tuple[Callable[[], Detect], tuple[float, ...], str]] = {
        "yunet 640, two looks (default)": (lambda: edgeface_detector("yunet", 640), (0.0,), "0.0"),
        "yunet 480, two looks": (lambda: edgeface_detector("yunet", 480), (0.0,), "0.0"),
        "yunet 960, two looks": (lambda: edgeface_detector("yunet", 960), (0.0,), "0.0"),
        "yunet 640, one look": (lambda: edgeface_detector("yunet", 640, min_score=0.3, closer_look=False),
                                SCORE_SWEEP, "0.6"),
        "yunet 640, two looks, OpenCV DNN": (lambda: edgeface_detector("yunet", 640, backend="opencv"), (0.0,),
                                             "0.0"),
        "blazeface short": (lambda: edgeface_detector("blazeface"), (0.0,), "0.0"),
        "blazeface full": (lambda: edgeface_detector("blazeface-full"), (0.0,), "0.0"),
    }
    if not args.skip_dlib:
        candidates["dlib HOG, upsample 1"] = (dlib_hog, (0.0,), "0.0")
    rows = {}
    with progress_bar() as bar:
        task = bar.add_task("detectors", total=len(candidates))
        for label, (factory, floors, floor) in candidates.items():
            detect = factory()
            detect(scenes[0].image)  # warm-up: interpreter allocation, first-call costs
            rows[label] = {"score_floor": floor, "scenes": score_frames(detect, scenes, floors),
                           "clip": on_clip(detect, frames, float(floor))}
            bar.advance(task)
    plot(rows, RESULTS / "detectors_recall.png")
    total = sum(len(s.boxes) for s in scenes)
    payload = {
        "scenes": {"count": len(scenes), "faces": total, "seed": args.seed, "size": "1920x1080",
                   "width_range_px": [24, 200], "faces_per_scene": args.faces},
        "clip": {"file": CLIP.name, "frames": len(frames),
                 "faces_by_eye": {str(k): {"clear": v[0], "partial_or_dim": v[1]} for k, v in CLIP_BY_EYE.items()}},
        "one_core": True, "results": rows,
    }
    save("detectors.json", payload, started)
    for label, row in rows.items():
        s = row["scenes"]["by_score"][row["score_floor"]]
        print(f"{label:30s} recall40+ {100 * s['recall_40_plus']:6.2f} %  "
              f"FP/frame {s['false_positives_per_frame']:.3f}  {row['scenes']['ms_per_frame_p50']:7.2f} ms  " +
              "  ".join(f"{k}:{'-' if v['recall'] is None else round(100 * v['recall'], 1)}"
                        for k, v in s["recall_by_width"].items()) + f"  clip {row['clip']}")


if __name__ == "__main__":
    main()
