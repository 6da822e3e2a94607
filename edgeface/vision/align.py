"""Align faces onto a model's chip with a least-squares similarity transform (Umeyama).

An "aligned face" is RGB uint8 on the chip of the model's alignment: the ArcFace 112x112 template for every model
but those aligned ``yunet-dlib150``, which see dlib's 150x150 face chip (framed tighter around the face: the
framing dlib's ResNet was trained on). YuNet gives five points (eyes, nose tip, mouth corners). BlazeFace gives eyes,
nose tip and the mouth centre, so its mouth centre is mapped to the midpoint of the template's two mouth corners.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.vision.detector_options import DLIB_CHIP_ALIGNMENT
from edgeface.vision.face import Face

ALIGNED_SIZE = 112
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32)
# eyes, nose tip, mouth centre: the four BlazeFace keypoints that lie on the template's plane
BLAZEFACE_TEMPLATE = np.vstack([ARCFACE_TEMPLATE[:3], ARCFACE_TEMPLATE[3:].mean(0, keepdims=True)])
# where YuNet's five points fall on dlib's own 150x150 chip (its 5-point predictor, padding 0.25): the median over
# CelebA photos, fitted and checked by benchmarks/dlib_chip_template.py
DLIB_CHIP_SIZE = 150
DLIB_CHIP_TEMPLATE = np.array(
    [[46.9, 47.3], [105.5, 48.4], [76.7, 79.4], [50.0, 103.1], [101.0, 103.7]], np.float32)


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
    return warp_to(image, landmarks, template * (size / ALIGNED_SIZE), size)


def warp_to(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` x ``size`` chip on which ``landmarks`` land nearest ``template`` (chip pixels)."""
    matrix = similarity_transform(landmarks, template)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def chip_of(alignment: str | None) -> tuple[np.ndarray, int]:
    """The 5-point template (in chip pixels) and chip size a model aligned ``alignment`` sees."""
    if alignment == DLIB_CHIP_ALIGNMENT:
        return DLIB_CHIP_TEMPLATE, DLIB_CHIP_SIZE
    return ARCFACE_TEMPLATE, ALIGNED_SIZE


def chip_key(alignment: str | None) -> str:
    """The chip's geometry as text for an embedder's cache key, so a refitted template never reuses old embeddings
    ('' for the ArcFace template, which never moves: keys of such models stay what they were)."""
    if alignment != DLIB_CHIP_ALIGNMENT:
        return ""
    template, size = chip_of(alignment)
    return f"|chip={size}:{np.round(template, 2).tolist()}"


def face_landmarks(face: Face) -> np.ndarray:
    """The keypoints that lie on the template: all five of YuNet's, the first four of BlazeFace's six."""
    return face.keypoints if len(face.keypoints) == 5 else face.keypoints[:4]


def align_face(image: np.ndarray, face: Face, alignment: str | None = None) -> np.ndarray:
    """Aligned crop of a face on the chip of a model's ``alignment`` (ArcFace 112x112 unless it is dlib's)."""
    template, size = chip_of(alignment)
    landmarks = face_landmarks(face)
    if len(landmarks) == 4:
        template = np.vstack([template[:3], template[3:].mean(0, keepdims=True)])
    return warp_to(image, landmarks, template, size)


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
