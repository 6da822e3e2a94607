"""The chip a model sees: one object per alignment, holding its template, its size and which landmarks it is aligned
from, so no other module decides any of them.

An "aligned face" (a chip) is RGB uint8 on the template of the model's alignment:

* ``yunet-5pt``: the ArcFace 112x112 template, from YuNet's five points (eyes, nose tip, mouth corners);
* ``blazeface-4pt``: the same template, from BlazeFace's eyes, nose tip and mouth centre (mapped to the midpoint of
  the template's mouth corners), for models trained on BlazeFace-aligned crops;
* ``yunet-dlib150``: dlib's 150x150 face chip (framed tighter: what dlib's ResNet was trained on), from YuNet's
  five points placed where dlib's own 5-point predictor puts them.

A model or gallery that names no alignment (files made before alignments were recorded) is ``yunet-5pt``: said
once, here (``chip_for``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgeface.alignments import BLAZEFACE_ALIGNMENT, DLIB_CHIP_ALIGNMENT, YUNET_ALIGNMENT
from edgeface.errors import EdgefaceError

ARCFACE_SIZE = 112
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32)
# where YuNet's five points fall on dlib's own 150x150 chip (its 5-point predictor, padding 0.25): the median over
# CelebA photos, fitted and checked by benchmarks/dlib_chip_template.py
DLIB_CHIP_SIZE = 150
DLIB_CHIP_TEMPLATE = np.array(
    [[46.9, 47.3], [105.5, 48.4], [76.7, 79.4], [50.0, 103.1], [101.0, 103.7]], np.float32)


def four_points(template: np.ndarray) -> np.ndarray:
    """A five-point template as BlazeFace's four: eyes, nose tip, and the mouth corners' midpoint."""
    return np.vstack([template[:3], template[3:5].mean(0, keepdims=True)]).astype(np.float32)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix of the rotation+uniform scale+translation that best maps ``src`` onto ``dst`` (least squares).

    Degenerate input (all points equal, NaN) raises instead of producing a matrix full of NaN/inf.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise EdgefaceError(f"landmarks must be (N>=2, 2) matching the template, got {src.shape}")
    if not np.isfinite(src).all():
        raise EdgefaceError("landmarks contain NaN or infinite values")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    if var_s < 1e-12:
        raise EdgefaceError("landmarks are degenerate (all at one point)")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix.astype(np.float32)


def warp_to(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` x ``size`` chip on which ``landmarks`` land nearest ``template`` (chip pixels)."""
    matrix = similarity_transform(landmarks, template)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


@dataclass(frozen=True)
class Chip:
    alignment: str  # the name manifests and galleries record
    template: np.ndarray  # where YuNet's five points belong on the chip (chip pixels)
    size: int  # chip side, pixels
    landmarks: int  # how many points the detector it is aligned from gives: YuNet 5, BlazeFace 6

    def points(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the face's points that lie on the template, the template's matching points): all five of YuNet's, or
        the first four of BlazeFace's six against the template's four."""
        if len(keypoints) == 5:
            return np.asarray(keypoints, np.float32), self.template
        return np.asarray(keypoints[:4], np.float32), four_points(self.template)

    def align(self, image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """The chip of the face whose detector ``keypoints`` are given."""
        landmarks, template = self.points(keypoints)
        return warp_to(image, landmarks, template, self.size)

    def takes(self, keypoints: np.ndarray) -> bool:
        """Are these the landmarks this chip is aligned from (YuNet's 5 points, or BlazeFace's 6)?"""
        return len(keypoints) == self.landmarks

    @property
    def key(self) -> str:
        """The chip's geometry as text for an embedder's cache key, so a refitted template never reuses old
        embeddings ('' for the ArcFace template, which never moves: keys of such models stay what they were)."""
        if self.alignment != DLIB_CHIP_ALIGNMENT:
            return ""
        return f"|chip={self.size}:{np.round(self.template, 2).tolist()}"


CHIPS = {
    YUNET_ALIGNMENT: Chip(YUNET_ALIGNMENT, ARCFACE_TEMPLATE, ARCFACE_SIZE, 5),
    BLAZEFACE_ALIGNMENT: Chip(BLAZEFACE_ALIGNMENT, ARCFACE_TEMPLATE, ARCFACE_SIZE, 6),
    DLIB_CHIP_ALIGNMENT: Chip(DLIB_CHIP_ALIGNMENT, DLIB_CHIP_TEMPLATE, DLIB_CHIP_SIZE, 5),
}
# where enrolment measures a photo's sharpness, whatever the model's chip: MIN_SHARPNESS (recognize.enroll) was
# calibrated on this 112 px ArcFace crop, and one window keeps "too blurred" meaning the same for every model
SHARPNESS_CHIP = CHIPS[YUNET_ALIGNMENT]


def chip_for(alignment: str | None) -> Chip:
    """The chip of an alignment name; None (a file that records none) is ``yunet-5pt``."""
    chip = CHIPS.get(alignment or YUNET_ALIGNMENT)
    if chip is None:
        raise EdgefaceError(f"unknown alignment {alignment!r}; known: {', '.join(CHIPS)}")
    return chip
