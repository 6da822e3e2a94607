"""Align faces onto a model's chip (``vision.chip``: one object per alignment holds the template, the size and the
landmarks it is aligned from; this module applies it to detected faces).
"""

from __future__ import annotations

import numpy as np

from edgeface.vision.chip import ARCFACE_SIZE as ALIGNED_SIZE
from edgeface.vision.chip import (
    ARCFACE_TEMPLATE,
    DLIB_CHIP_SIZE,
    DLIB_CHIP_TEMPLATE,
    chip_for,
    four_points,
    similarity_transform,
    warp_to,
)
from edgeface.vision.face import Face

# what callers import from here; the chip geometry itself lives in vision.chip
__all__ = ["ALIGNED_SIZE", "ARCFACE_TEMPLATE", "BLAZEFACE_TEMPLATE", "DLIB_CHIP_SIZE", "DLIB_CHIP_TEMPLATE", "align",
           "align_face", "centre_face", "chip_key", "chip_of", "face_landmarks", "similarity_transform"]

BLAZEFACE_TEMPLATE = four_points(ARCFACE_TEMPLATE)  # eyes, nose tip, mouth centre: BlazeFace's points on the template


def align(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray | None = None,
          size: int = ALIGNED_SIZE) -> np.ndarray:
    """Warp ``image`` so ``landmarks`` land on ``template`` (5-point ArcFace or 4-point BlazeFace by count)."""
    landmarks = np.asarray(landmarks, np.float32)
    if template is None:
        template = ARCFACE_TEMPLATE if len(landmarks) == 5 else BLAZEFACE_TEMPLATE
    return warp_to(image, landmarks, template * (size / ALIGNED_SIZE), size)


def chip_of(alignment: str | None) -> tuple[np.ndarray, int]:
    """The 5-point template (in chip pixels) and chip size a model aligned ``alignment`` sees."""
    chip = chip_for(alignment)
    return chip.template, chip.size


def chip_key(alignment: str | None) -> str:
    """The chip's geometry for an embedder's cache key (``Chip.key``)."""
    return chip_for(alignment).key


def face_landmarks(face: Face) -> np.ndarray:
    """The keypoints that lie on the template: all five of YuNet's, the first four of BlazeFace's six."""
    return face.keypoints if len(face.keypoints) == 5 else face.keypoints[:4]


def align_face(image: np.ndarray, face: Face, alignment: str | None = None) -> np.ndarray:
    """Aligned crop of a face on the chip of a model's ``alignment`` (ArcFace 112x112 unless it is dlib's)."""
    return chip_for(alignment).align(image, face.keypoints)


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
