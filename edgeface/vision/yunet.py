"""YuNet face detection (OpenCV's model zoo, MIT): small faces, 5 landmarks, on LiteRT or OpenCV.

Why YuNet is the default: it is a fully convolutional detector that sees faces from about 10 px wide, so a 1080p
frame resized to a 640 px long side still shows faces 40 px wide in the original frame (13 px after resizing),
where BlazeFace, squeezing the whole frame into 128x128, sees none. Its five landmarks are the ArcFace template's
own points, so alignment needs no guessed mouth centre.

Two backends run the same network:

* ``litert`` (default): ``face_detection_yunet_2026may.tflite``, the ONNX model with its reshape/transpose tails
  cut off (so it stays fully convolutional and takes any input size) and converted by onnx2tf
  (``benchmarks/convert_yunet.py``). Its raw outputs match OpenCV's to 1e-5; on XNNPACK it runs the 640x384
  network in 6.6 ms against 11.0 ms in OpenCV's DNN module on one core of the development machine, so it is the
  default (``benchmarks/results/detectors.json`` has the side-by-side run).
* ``opencv``: ``cv2.FaceDetectorYN`` on the original ONNX file, kept as the reference the LiteRT path is checked
  against.

The detection-size policy: a frame whose long side exceeds ``detect_size`` is resized down to it (INTER_AREA, which
keeps small faces' detail); smaller images run at their own size, never upscaled. Faces larger than the network's
comfortable range (~300 px at the resized scale) are still found in practice; ``FaceFinder`` adds a coarser pass
for single-photo tasks when the first finds nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.vision.detector_options import DEFAULT_DETECT_SIZE, check_detect_size
from edgeface.vision.face import Face

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MODEL_FILES = {"litert": "face_detection_yunet_2026may.tflite", "opencv": "face_detection_yunet_2026may.onnx"}
DEFAULT_MIN_SCORE = 0.6
STRIDES = (8, 16, 32)


def yunet_model_path(backend: str = "litert") -> Path:
    """The vendored model for a backend, or $EDGEFACE_YUNET_MODEL (.tflite or .onnx) when set."""
    override = os.environ.get("EDGEFACE_YUNET_MODEL")
    return Path(override) if override else ASSETS / MODEL_FILES[backend]


def decode(maps: list[np.ndarray], pad_w: int, pad_h: int, min_score: float, nms: float) -> np.ndarray:
    """YuNet's 12 output maps -> rows (x, y, w, h, 5 landmark x/y pairs, score), as ``cv2.FaceDetectorYN`` decodes.

    Per stride the net predicts two probabilities (class and objectness; the score is their geometric mean, so
    their order does not matter), a box (centre offset in cells, log size in strides) and 5 landmark offsets.
    Maps are told apart by shape: (1, H/stride, W/stride, channels).
    """
    rows = []
    for stride in STRIDES:
        grid = (pad_h // stride, pad_w // stride)
        mine = [m for m in maps if m.shape[1:3] == grid]
        probs = [m for m in mine if m.shape[3] == 1]
        bbox = next((m for m in mine if m.shape[3] == 4), None)
        kps = next((m for m in mine if m.shape[3] == 10), None)
        if len(probs) != 2 or bbox is None or kps is None:
            raise EdgefaceError(f"YuNet model outputs do not match a {pad_w}x{pad_h} input at stride {stride}")
        score = np.sqrt(np.clip(probs[0], 0, 1) * np.clip(probs[1], 0, 1)).reshape(-1)
        keep = np.flatnonzero(score >= min_score)
        if not len(keep):
            continue
        r, c = (keep // grid[1]).astype(np.float32), (keep % grid[1]).astype(np.float32)
        b = bbox.reshape(-1, 4)[keep]
        w, h = np.exp(b[:, 2]) * stride, np.exp(b[:, 3]) * stride
        x0, y0 = (c + b[:, 0]) * stride - w / 2, (r + b[:, 1]) * stride - h / 2
        k = kps.reshape(-1, 5, 2)[keep]
        points = np.stack([(k[..., 0] + c[:, None]) * stride, (k[..., 1] + r[:, None]) * stride], axis=-1)
        rows.append(np.column_stack([x0, y0, w, h, points.reshape(-1, 10), score[keep]]))
    if not rows:
        return np.zeros((0, 15), np.float32)
    found = np.concatenate(rows).astype(np.float32)
    chosen = cv2.dnn.NMSBoxes(found[:, :4].tolist(), found[:, 14].tolist(), min_score, nms, top_k=5000)
    return found[np.asarray(chosen, np.int64).reshape(-1)]


class YuNet:
    """YuNet on any image size; boxes and 5 landmarks in original image pixels, highest score first."""

    name = "yunet"
    alignment = "yunet-5pt"

    def __init__(self, threads: int = 1, detect_size: int = DEFAULT_DETECT_SIZE,
                 min_score: float = DEFAULT_MIN_SCORE, nms: float = 0.3, backend: str | None = None,
                 model: str | Path | None = None) -> None:
        self.detect_size = check_detect_size(detect_size)
        if not 0.0 < min_score < 1.0:
            raise EdgefaceError(f"detector score threshold must be between 0 and 1, got {min_score}")
        if threads < 1:
            raise EdgefaceError(f"threads must be at least 1, got {threads}")
        path = Path(model) if model else yunet_model_path(backend or "litert")
        backend = backend or ("opencv" if path.suffix == ".onnx" else "litert")
        if not path.is_file():
            raise EdgefaceError(f"YuNet detector model not found: {path}")
        if path.stat().st_size == 0:
            raise EdgefaceError(f"YuNet detector model {path} is empty: reinstall edgeface or fix EDGEFACE_YUNET_MODEL")
        self.backend, self.min_score, self.nms = backend, min_score, nms
        self.id = f"yunet/{path.stem}/{backend}/{self.detect_size}/{min_score}"
        cv2.setNumThreads(threads)
        if backend == "litert":
            from edgeface.runtime.interpreter import Model

            self.model = Model(path, threads=threads)
        else:
            try:
                self.net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), min_score, nms, 5000)
            except cv2.error:
                raise EdgefaceError(f"{path} is not a YuNet ONNX model OpenCV can load (damaged or wrong file)"
                                    ) from None
            self._size = (320, 320)

    def _run(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        if self.backend == "litert":
            pad_w, pad_h = -(-w // 32) * 32, -(-h // 32) * 32  # the net needs multiples of its largest stride
            self.model.resize_input((1, pad_h, pad_w, 3))
            x = np.zeros((1, pad_h, pad_w, 3), np.float32)
            x[0, :h, :w] = bgr
            return decode(self.model.invoke(x), pad_w, pad_h, self.min_score, self.nms)
        if (w, h) != self._size:
            self.net.setInputSize((w, h))
            self._size = (w, h)
        try:
            _, rows = self.net.detect(bgr)
        except cv2.error as exc:
            raise EdgefaceError(f"YuNet failed on a {w}x{h} image: {exc.err}") from None
        return np.zeros((0, 15), np.float32) if rows is None else rows

    def detect(self, image: np.ndarray, bgr: bool = False, detect_size: int | None = None) -> list[Face]:
        """Faces in an (H, W, 3) uint8 image (RGB unless ``bgr``), highest score first."""
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
            raise EdgefaceError(f"expected an (H, W, 3) image, got shape {image.shape}")
        h, w = image.shape[:2]
        scale = min(1.0, (detect_size or self.detect_size) / max(h, w))
        if scale < 1.0:
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        if not bgr:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        rows = self._run(np.ascontiguousarray(image))
        faces = []
        for row in rows[np.argsort(-rows[:, 14])]:
            x, y, bw, bh = row[:4] / scale
            box = np.array([x, y, x + bw, y + bh], np.float32)
            faces.append(Face(box, float(row[14]), (row[4:14].reshape(5, 2) / scale).astype(np.float32)))
        return faces
