"""Is a detected face fit to be recognised? Head turn from the detector's keypoints, sharpness of the crop.

Why a turn limit: the alignment template is frontal, BlazeFace's keypoints drift on profiles, and a small face
model has seen few profiles, so a face turned far away gets an embedding that can sit close to anybody's; it is
better reported as unusable than given a name. Enrolment refuses such photos for the same reason.
"""

from __future__ import annotations

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
