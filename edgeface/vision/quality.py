"""Is a detected face fit to be recognised? Head turn from the detector's keypoints, sharpness of the crop.

Why a turn limit: the alignment template is frontal, BlazeFace's keypoints drift on profiles, and a small face
model has seen few profiles, so a face turned far away gets an embedding that can sit close to anybody's; it is
better reported as unusable than given a name. Enrolment refuses such photos for the same reason.
"""

from __future__ import annotations

import cv2
import numpy as np

# Horizontal offset of the nose tip from the point between the eyes, in half eye-distances: 0 for a frontal face,
# 1 when the nose tip lines up with an eye (roughly 40 degrees of yaw). On LFW View 2's 7,701 images (frontal to
# three-quarter views) the median is 0.24, the 99th percentile 1.12, and 0.7 % exceed 1.2, the limit; faces in
# profile measure 2 and more.
MAX_TURN = 1.2


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
