"""Detector names, defaults and range checks: light enough for the CLI to import at start-up (no numpy, no cv2)."""

from __future__ import annotations

from enum import Enum

from edgeface.alignments import (  # noqa: F401 (named here too, beside the detectors)
    ALIGNMENTS,
    BLAZEFACE_ALIGNMENT,
    DLIB_CHIP_ALIGNMENT,
    YUNET_ALIGNMENT,
)
from edgeface.errors import EdgefaceError


class DetectorName(str, Enum):
    yunet = "yunet"
    blazeface = "blazeface"
    blazeface_full = "blazeface-full"


DEFAULT_DETECTOR = DetectorName.yunet.value
DEFAULT_DETECT_SIZE = 640
DEFAULT_MIN_FACE = 32
DEFAULT_DETECT_EVERY = 1  # video frames per whole-frame detection: 1 detects and embeds every frame (Recognizer)
DETECT_SIZE_RANGE = (32, 8192)
# Horizontal offset of the nose tip from the point between the eyes, in half eye-distances: 0 for a frontal face,
# 1 when the nose tip lines up with an eye (roughly 40 degrees of yaw). On LFW View 2's 7,701 images (frontal to
# three-quarter views) the median is 0.24, the 99th percentile 1.12, and 0.7 % exceed 1.2, the limit; faces in
# profile measure 2 and more. A model's manifest may set its own (``gates.max_turn``).
DEFAULT_MAX_TURN = 1.2
DETECTOR_HELP = ("yunet (default): cameras and photos, faces from ~13 px after resizing to --detect-size, "
                 "5 landmarks; blazeface: phone-distance faces within ~2 m (misses faces under ~150 px in 1080p); "
                 "blazeface-full: BlazeFace's full-range variant")
DETECT_SIZE_HELP = ("YuNet: frames larger than this (long side, pixels) are resized down to it; larger finds "
                    "smaller faces but costs time (640 finds faces from ~40 px in a 1080p frame)")
MIN_FACE_HELP = ("faces narrower than this (pixels, original frame) are reported as unknown, reason 'too small', "
                 "without matching: smaller faces give unreliable embeddings")


def detector_value(name: str | DetectorName) -> str:
    value = getattr(name, "value", name)
    if value not in {d.value for d in DetectorName}:
        raise EdgefaceError(f"unknown detector {value!r}; choose one of {', '.join(d.value for d in DetectorName)}")
    return value


def alignment_of(name: str | DetectorName, model_alignment: str | None = None) -> str:
    """Which landmarks crops are aligned from, for a detector and a model (what a gallery records).

    BlazeFace always gives its own; YuNet gives its 5 points, or BlazeFace's for a model trained on those, onto the
    model's chip (dlib's for ``yunet-dlib150``).
    """
    if detector_value(name) != "yunet" or model_alignment == BLAZEFACE_ALIGNMENT:
        return BLAZEFACE_ALIGNMENT
    return DLIB_CHIP_ALIGNMENT if model_alignment == DLIB_CHIP_ALIGNMENT else YUNET_ALIGNMENT


def check_detect_size(detect_size: int) -> int:
    low, high = DETECT_SIZE_RANGE
    if not low <= detect_size <= high:
        raise EdgefaceError(f"--detect-size must be between {low} and {high} pixels (long side), got {detect_size}")
    return int(detect_size)


def check_min_face(min_face: int) -> int:
    if min_face < 0:
        raise EdgefaceError(f"--min-face must be 0 or more pixels, got {min_face}")
    return int(min_face)
