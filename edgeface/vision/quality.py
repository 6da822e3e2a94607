"""Is a detected face fit to be recognised? Head turn from the detector's keypoints; light and sharpness of the
crop the model sees.

Why a turn limit: the alignment template is frontal, BlazeFace's keypoints drift on profiles, and a small face
model has seen few profiles, so a face turned far away gets an embedding that can sit close to anybody's; it is
better reported as unusable than given a name. Enrolment refuses such photos for the same reason.

Why light gates (``Gates``): a face too dark, lit from one side only, too blurred or buried in sensor grain loses
what tells people apart before the model sees it, and its embedding drifts towards everybody's: strangers then cross
the threshold more often than its FAR says (a dim room at the camera's gain limit made the default model match half
of all LFW strangers). Such a face is reported with the reason (``too dark``, ``too uneven``, ``too blurred``,
``too noisy``) and never named.
Brightness is also skin: the calibration bounds the share of every skin group it turns away, not only LFW's. The
limits are each model's own, calibrated on LFW under harsh light (``benchmarks/quality_gates.py``) and stored in its
manifest (``gates``); a model without them has no light gates.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgeface.vision.detector_options import DEFAULT_MAX_TURN
from edgeface.vision.face import Face

MAX_TURN = DEFAULT_MAX_TURN  # the limit, and why: see there (a model's manifest may set its own)

def head_turn(keypoints: np.ndarray) -> float:
    """Head turn of a face from its detector keypoints (right eye, left eye, nose tip, ...); see MAX_TURN."""
    right, left, nose = (np.asarray(k, np.float64) for k in keypoints[:3])
    axis = left - right
    half = float(np.linalg.norm(axis)) / 2
    if half < 1e-6:
        return float("inf")
    return abs(float(np.dot(nose - (left + right) / 2, axis / (2 * half)))) / half


def sharpness(aligned: np.ndarray) -> float:
    """Variance of the Laplacian of the central face region: low for blurred or out-of-focus photos."""
    grey = cv2.cvtColor(aligned[16:104, 16:96], cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


GRAIN_PATCH = 128  # the most native pixels a side of the grain patch takes: noise statistics, not a face picture


def grain(image: np.ndarray, box: np.ndarray) -> float:
    """How much of the fine detail in the middle of a face is sensor noise: the Laplacian's variance over a patch of
    the image's own pixels (the central 60 % of the face box, at most ``GRAIN_PATCH`` a side) divided by its variance
    at half that resolution; 0 for a face too small to tell.

    Why a ratio: a dim room at the camera's gain limit fills the face with grain whose embedding sits close to every
    other grainy face's, but the Laplacian's variance alone cannot tell grain from the detail of a sharp photo (the
    demo's press photos read 280-1,015 on the chip, grainy LFW faces 520+; Immerkaer's noise estimate failed the same
    way). Halving the resolution averages white noise away (its Laplacian falls) while real detail, which has most of
    its energy at coarser scales, keeps its Laplacian or gains (a pixel of the half image spans two). Clean photos
    read 0.1-1.3 (LFW, CelebA and UTKFace to their 99th percentile, the demo's press photos), LFW under ``eval
    --condition dark`` 2.3-6.
    Why the image's own pixels, not the chip: sensor noise is white per sensor pixel, while a large sharp face shrunk
    into a 112 px chip packs its detail up to the chip's finest scale and reads as grain there.
    """
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    height, width = image.shape[:2]
    side = int(min(GRAIN_PATCH, 0.6 * min(x1 - x0, y1 - y0), height, width))
    if side < 16:
        return 0.0
    # centred on the face, moved inside the image where the face runs off its edge
    top = int(np.clip((y0 + y1) / 2 - side / 2, 0, height - side))
    left = int(np.clip((x0 + x1) / 2 - side / 2, 0, width - side))
    patch = np.asarray(image[top:top + side, left:left + side], np.float32)
    grey = patch.mean(axis=2) if patch.ndim == 3 else patch  # channel order (RGB or BGR) does not matter
    half = cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2), interpolation=cv2.INTER_AREA)
    coarse = float(cv2.Laplacian(half, cv2.CV_32F).var())
    return float(cv2.Laplacian(grey, cv2.CV_32F).var()) / max(coarse, 1e-3)


MEASURE_SIDE = 112  # gate measures are taken on the chip resized to this side, whatever the model's chip size
MEASURES = ("brightness", "unevenness", "sharpness", "grain")


def face_measures(chip: np.ndarray, image: np.ndarray, face: Face) -> np.ndarray:
    """(brightness, unevenness, sharpness, grain) of a face: on its aligned chip (RGB uint8), the mean grey level of
    the face between the eyes and the chin, how much darker its darker half is than its brighter half (0 even, 1 one
    side black) and the variance of the Laplacian; on the image it was found in, how much of the fine detail is
    sensor noise (``grain``)."""
    if chip.shape[0] != MEASURE_SIDE or chip.shape[1] != MEASURE_SIDE:
        chip = cv2.resize(chip, (MEASURE_SIDE, MEASURE_SIDE), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY).astype(np.float32)
    middle = grey[28:100, 24:88]
    left, right = float(middle[:, :32].mean()), float(middle[:, 32:].mean())
    uneven = 1.0 - min(left, right) / max(left, right, 1.0)
    return np.array([float(middle.mean()), uneven, sharpness(chip), grain(image, face.box)], np.float32)


LIMITS = ("min_brightness", "max_unevenness", "min_sharpness", "max_grain")  # one per measure, in its order
REASONS = ("too dark", "too uneven", "too blurred", "too noisy")


@dataclass(frozen=True)
class Gates:
    """A model's light limits, one per ``face_measures`` value (each None: not gated). A face outside one is reported
    with that limit's reason (``REASONS``) and never named."""

    min_brightness: float | None = None
    max_unevenness: float | None = None
    min_sharpness: float | None = None
    max_grain: float | None = None

    @classmethod
    def from_manifest(cls, gates: dict | None) -> Gates:
        gates = gates or {}
        return cls(*(None if gates.get(k) is None else float(gates[k]) for k in LIMITS))

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in LIMITS}

    @property
    def active(self) -> bool:
        return any(v is not None for v in self.to_dict().values())

    def failing(self, measures: np.ndarray) -> np.ndarray:
        """(N, 3) booleans: which limit each face (a row of ``face_measures``) is outside."""
        m = np.asarray(measures, np.float32).reshape(-1, len(LIMITS))
        out = np.zeros(m.shape, bool)
        for k, limit in enumerate(LIMITS):
            value = getattr(self, limit)
            if value is not None:
                out[:, k] = m[:, k] < value if limit.startswith("min_") else m[:, k] > value
        return out

    def reason(self, measures: np.ndarray) -> str | None:
        """Why a face with these ``face_measures`` may not be named (the first limit it is outside), or None."""
        failed = self.failing(measures)[0]
        return REASONS[int(np.argmax(failed))] if failed.any() else None

    def passed(self, measures: np.ndarray) -> np.ndarray:
        """Which rows of (N, 3) measures are inside every limit."""
        return ~self.failing(measures).any(axis=1)
