"""Is a detected face fit to be recognised? Head turn from the detector's keypoints; light and sharpness of the
crop the model sees.

Why a turn limit: the alignment template is frontal, BlazeFace's keypoints drift on profiles, and a small face
model has seen few profiles, so a face turned far away gets an embedding that can sit close to anybody's; it is
better reported as unusable than given a name. Enrolment refuses such photos for the same reason.

Why light gates (``Gates``): a face too dark, lit from one side only, or too blurred loses what tells people apart
before the model sees it, and its embedding drifts towards everybody's: strangers then cross the threshold more
often than its FAR says (a dim room at the camera's gain limit made the default model match half of all LFW
strangers). Such a face is reported with the reason (``too dark``, ``too uneven``, ``too blurred``) and never named.
Brightness is also skin: the calibration bounds the share of every skin group it turns away, not only LFW's. The
limits are each model's own, calibrated on LFW under harsh light (``benchmarks/quality_gates.py``) and stored in its
manifest (``gates``); a model without them has no light gates.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgeface.vision.detector_options import DEFAULT_MAX_TURN

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


MEASURE_SIDE = 112  # gate measures are taken on the chip resized to this side, whatever the model's chip size
# what each face is measured by: a noise estimate was tried and dropped (Immerkaer's, on the chip): sharp modern
# photos' skin texture read as noisier than LFW's dim, grainy faces
MEASURES = ("brightness", "unevenness", "sharpness")


def face_measures(chip: np.ndarray) -> np.ndarray:
    """(brightness, unevenness, sharpness) of an aligned face chip (RGB uint8): the mean grey level of the face
    between the eyes and the chin, how much darker its darker half is than its brighter half (0 even, 1 one side
    black), and the variance of the Laplacian."""
    if chip.shape[0] != MEASURE_SIDE or chip.shape[1] != MEASURE_SIDE:
        chip = cv2.resize(chip, (MEASURE_SIDE, MEASURE_SIDE), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY).astype(np.float32)
    face = grey[28:100, 24:88]
    left, right = float(face[:, :32].mean()), float(face[:, 32:].mean())
    uneven = 1.0 - min(left, right) / max(left, right, 1.0)
    return np.array([float(face.mean()), uneven, sharpness(chip)], np.float32)


LIMITS = ("min_brightness", "max_unevenness", "min_sharpness")  # one per measure, in its order
REASONS = ("too dark", "too uneven", "too blurred")


@dataclass(frozen=True)
class Gates:
    """A model's light limits, one per ``face_measures`` value (each None: not gated). A face outside one is reported
    with that limit's reason (``REASONS``) and never named."""

    min_brightness: float | None = None
    max_unevenness: float | None = None
    min_sharpness: float | None = None

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
