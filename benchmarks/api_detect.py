"""What the public detection call costs over raw OpenCV YuNet: ``edgeface.load().detect(frame, bgr=True)`` on 1080p
frames against ``cv2.FaceDetectorYN`` (the same YuNet, as ONNX, on OpenCV's DNN) at 640 wide, the same frames, one
core, interleaved rounds (the median of per-round ratios: load that comes and goes cancels).

    python benchmarks/api_detect.py [--frames 40] [--rounds 7]

The 1080p frames are the demo clip's first frames scaled to 1920x1080 (the faces a 1080p camera gives at that
framing). The raw arm does what a user of OpenCV writes: resize the frame to 640x360, detect, scale the boxes back.
-> results/api_detect.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import cv2
import numpy as np
from common import MEDIA, save

import edgeface
from edgeface.vision.yunet import yunet_model_path


def frames(count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(MEDIA / "short_hamilton_clip.mp4"))
    out = []
    while len(out) < count:
        ok, frame = capture.read()
        if not ok:
            break
        out.append(cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_LINEAR))
    capture.release()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    started = time.time()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, both arms
    cv2.setNumThreads(1)
    video = frames(args.frames)
    ours = edgeface.load(threads=1)
    raw = cv2.FaceDetectorYN.create(str(yunet_model_path("opencv")), "", (640, 360), 0.6, 0.3, 5000)
    scale = 1920 / 640

    def edgeface_arm() -> int:
        return sum(len(ours.detect(frame, bgr=True)) for frame in video)

    def opencv_arm() -> int:
        found = 0
        for frame in video:
            _, faces = raw.detect(cv2.resize(frame, (640, 360), interpolation=cv2.INTER_LINEAR))
            boxes = [] if faces is None else faces[:, :4] * scale
            found += len(boxes)
        return found

    arms = {"edgeface_detect": edgeface_arm, "opencv_yunet": opencv_arm}
    for arm in arms.values():
        arm()  # warm
    times: dict[str, list[float]] = {k: [] for k in arms}
    faces: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, arm in arms.items():
            t = time.perf_counter()
            faces[name] = arm()
            times[name].append((time.perf_counter() - t) / len(video) * 1e3)
    ratios = [a / b for a, b in zip(times["edgeface_detect"], times["opencv_yunet"], strict=True)]
    payload = {"frames": len(video), "size": "1920x1080", "rounds": args.rounds,
               "ms_per_frame": {k: round(statistics.median(v), 2) for k, v in times.items()},
               "ms_per_frame_rounds": {k: [round(x, 2) for x in v] for k, v in times.items()},
               "faces_found": faces, "ratio_median": round(statistics.median(ratios), 3),
               "target": "edgeface.load().detect(frame, bgr=True) within 1.5x raw OpenCV YuNet (issue #39)"}
    print(payload["ms_per_frame"], "ratio", payload["ratio_median"], faces)
    save("api_detect.json", payload, started)


if __name__ == "__main__":
    main()
