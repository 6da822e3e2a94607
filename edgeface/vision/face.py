"""A detected face, whichever detector found it.

Keypoints always start with the subject's right eye, left eye and nose tip (image left to right for a frontal
face), so head-turn and eye-distance checks work for every detector. YuNet adds the right and left mouth corners
(5 points, the ArcFace template's own points); BlazeFace adds the mouth centre and both ear tragions (6 points).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAME_FACE_IOU = 0.3  # two boxes overlapping at least this much are one face (tracking; a given box and its detection)


@dataclass
class Face:
    """One detected face in original image pixels: box (x0, y0, x1, y1), score, keypoints (K, 2)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray
    fallback: bool = field(default=False)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    def sized(self, width: float, height: float) -> Face:
        """The same face with a box ``width`` x ``height`` around its own centre (keypoints as they are)."""
        centre = (self.box[:2] + self.box[2:]) / 2
        half = np.array([width, height], np.float32) / 2
        return Face(np.concatenate([centre - half, centre + half]).astype(np.float32), self.score, self.keypoints,
                    self.fallback)

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> Face:
        """The same face in another image's pixels: ``(p - (dx, dy)) / scale``."""
        shift = np.array([dx, dy], np.float32)
        return Face(((self.box.reshape(2, 2) - shift) / scale).reshape(4).astype(np.float32), self.score,
                    ((self.keypoints - shift) / scale).astype(np.float32), self.fallback)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one x0y0x1y1 box with each of (N, 4) boxes."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)
