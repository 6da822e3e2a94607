"""Align faces onto the ArcFace 112x112 template with a least-squares similarity transform (Umeyama).

An "aligned face" is always RGB uint8 112x112 on this template. YuNet gives the template's own five points (eyes,
nose tip, mouth corners). BlazeFace gives eyes, nose tip and the mouth centre, so its mouth centre is mapped to the
midpoint of the template's two mouth corners.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.vision.face import Face

ALIGNED_SIZE = 112
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32)
# eyes, nose tip, mouth centre: the four BlazeFace keypoints that lie on the template's plane
BLAZEFACE_TEMPLATE = np.vstack([ARCFACE_TEMPLATE[:3], ARCFACE_TEMPLATE[3:].mean(0, keepdims=True)])


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


def align(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray | None = None,
          size: int = ALIGNED_SIZE) -> np.ndarray:
    """Warp ``image`` so ``landmarks`` land on ``template`` (5-point ArcFace or 4-point BlazeFace by count)."""
    landmarks = np.asarray(landmarks, np.float32)
    if template is None:
        template = ARCFACE_TEMPLATE if len(landmarks) == 5 else BLAZEFACE_TEMPLATE
    matrix = similarity_transform(landmarks, template * (size / ALIGNED_SIZE))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def face_landmarks(face: Face) -> np.ndarray:
    """The keypoints that lie on the template: all five of YuNet's, the first four of BlazeFace's six."""
    return face.keypoints if len(face.keypoints) == 5 else face.keypoints[:4]


def align_face(image: np.ndarray, face: Face) -> np.ndarray:
    """Aligned 112x112 crop of a detected face."""
    return align(image, face_landmarks(face))


def centre_face(image: np.ndarray) -> Face:
    """A stand-in face for images where detection failed: the centred square covering half the short side.

    Used only where a protocol must embed every image (LFW); such images are counted and reported.
    """
    h, w = image.shape[:2]
    side = 0.5 * min(h, w)
    cx, cy = w / 2, h / 2
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)
    # where the template's five points fall in a square crop of this box
    keypoints = (box[:2] + ARCFACE_TEMPLATE / ALIGNED_SIZE * side).astype(np.float32)
    return Face(box, 0.0, keypoints, fallback=True)
