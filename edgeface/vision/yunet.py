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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.vision.detector_options import DEFAULT_DETECT_SIZE, YUNET_ALIGNMENT, check_detect_size
from edgeface.vision.face import Face, iou
from edgeface.vision.image import square_crop

if TYPE_CHECKING:
    from edgeface.runtime.interpreter import Model

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MODEL_FILES = {"litert": "face_detection_yunet_2026may.tflite", "opencv": "face_detection_yunet_2026may.onnx"}
DEFAULT_MIN_SCORE = 0.6
CANDIDATE_SCORE = 0.3  # floor of the first look at the resized frame
SURE_SCORE = 0.8  # first-look score above which a candidate needs no closer look (no false positive above it
# on the generated 1080p scenes: benchmarks/results/detectors.json)
CLOSER_LOOK_PX = 64  # face width in the closer look's crop
CLOSER_LOOK_CONTEXT = 3.0  # crop side / face box side
FOLLOW_IOU = 0.3  # a followed face's new box overlaps its old one at least this much (the tracker's rule)
FOLLOW_CONTEXT, FOLLOW_PX = 2.0, 48  # following looks in a 96 px crop: a face moves less than half its size between
# key frames, and a quarter of the closer look's pixels costs a quarter of its time
STRIDES = (8, 16, 32)
LOOKS = ("frame", "closer", "follow")  # the whole frame, a candidate's closer look, a known face followed


def contains(box: np.ndarray, other: np.ndarray) -> bool:
    """Whether ``other``'s centre lies inside ``box`` (x0, y0, x1, y1)."""
    cx, cy = (other[0] + other[2]) / 2, (other[1] + other[3]) / 2
    return bool(box[0] <= cx <= box[2] and box[1] <= cy <= box[3])


def face_of(row: np.ndarray) -> Face:
    """A decoded row (x, y, w, h, 5 landmark x/y pairs, score), already in image pixels, as a Face."""
    x, y, bw, bh = row[:4]
    return Face(np.array([x, y, x + bw, y + bh], np.float32), float(row[14]),
                row[4:14].reshape(5, 2).astype(np.float32))


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
    alignment = YUNET_ALIGNMENT

    def __init__(self, threads: int = 1, detect_size: int = DEFAULT_DETECT_SIZE,
                 min_score: float = DEFAULT_MIN_SCORE, nms: float = 0.3, backend: str | None = None,
                 model: str | Path | None = None, closer_look: bool = True) -> None:
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
        self.backend, self.min_score, self.nms, self.closer_look = backend, min_score, nms, closer_look
        self.id = f"yunet/{path.stem}/{backend}/{self.detect_size}/{min_score}/{'two' if closer_look else 'one'}-look"
        cv2.setNumThreads(threads)
        if backend == "litert":
            self.path, self.threads = path, threads
            self.models: dict[str, Model] = {}  # one interpreter per kind of look (``_model``)
            self._model("frame")  # a damaged file is refused now, not at the first frame
        else:
            try:
                self.net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), min_score, nms, 5000)
            except cv2.error:
                raise EdgefaceError(f"{path} is not a YuNet ONNX model OpenCV can load (damaged or wrong file)"
                                    ) from None
            self._size = (320, 320)

    def _model(self, look: str) -> Model:
        """The interpreter for one kind of look (``LOOKS``), made when first needed (photos never follow). Each
        keeps its own input size: re-planning for another size costs ~0.5 ms, more than following a face does
        (0.2 ms at 96 px)."""
        if look not in self.models:
            from edgeface.runtime.interpreter import Model

            first = (1, 320, 320, 3)  # the file stores 1x1, too small for its strided convolutions
            self.models[look] = Model(self.path, threads=self.threads, input_shape=first)
        return self.models[look]

    def _run(self, bgr: np.ndarray, floor: float, look: str = "frame") -> np.ndarray:
        """Decoded rows (x, y, w, h, landmarks, score) in ``bgr``'s pixels, score >= floor; ``look`` is one of
        ``LOOKS``."""
        h, w = bgr.shape[:2]
        if self.backend == "litert":
            model = self._model(look)
            pad_w, pad_h = -(-w // 32) * 32, -(-h // 32) * 32  # the net needs multiples of its largest stride
            model.resize_input((1, pad_h, pad_w, 3))
            x = np.zeros((1, pad_h, pad_w, 3), np.float32)
            x[0, :h, :w] = bgr
            return decode(model.invoke(x), pad_w, pad_h, floor, self.nms)
        if (w, h) != self._size:
            self.net.setInputSize((w, h))
            self._size = (w, h)
        try:
            self.net.setScoreThreshold(floor)
            _, rows = self.net.detect(bgr)
        except cv2.error as exc:
            raise EdgefaceError(f"YuNet failed on a {w}x{h} image: {exc.err}") from None
        return np.zeros((0, 15), np.float32) if rows is None else rows.astype(np.float32)

    def detect(self, image: np.ndarray, bgr: bool = False, detect_size: int | None = None,
               known: np.ndarray | None = None) -> list[Face]:
        """Faces in an (H, W, 3) uint8 image (RGB unless ``bgr``), highest score first.

        Two looks, because a face 40 px wide in a 1080p frame is 13 px after resizing to 640, at the bottom of
        YuNet's range, where faces and face-like texture score alike. The resized frame is searched with a low
        floor (``CANDIDATE_SCORE``); candidates scoring ``SURE_SCORE`` or more are faces. Each other candidate is
        looked at again in a crop of the *original* frame around it, scaled so the face is about
        ``CLOSER_LOOK_PX`` wide, and kept if YuNet scores it ``min_score`` or more there. The closer look also
        gives the small face sharper landmarks, hence a better alignment. It costs about 1.5 ms per candidate.

        ``known``: boxes (x0, y0, x1, y1) of faces a video loop accepted a frame ago. An uncertain candidate on one
        of them needs no proof that it is a face, only where it is now: it is followed (``follow``, a quarter of
        the closer look's pixels) instead of looked at closer; if the follow loses it, the closer look decides.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
            raise EdgefaceError(f"expected an (H, W, 3) image, got shape {image.shape}")
        full = image if bgr else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        h, w = full.shape[:2]
        scale = min(1.0, (detect_size or self.detect_size) / max(h, w))
        small = full if scale == 1.0 else cv2.resize(full, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                     interpolation=cv2.INTER_AREA)
        floor = min(CANDIDATE_SCORE, self.min_score) if self.closer_look else self.min_score
        rows = self._run(np.ascontiguousarray(small), floor)
        rows[:, :14] /= scale
        sure = rows[:, 14] >= (max(SURE_SCORE, self.min_score) if self.closer_look else self.min_score)
        faces = [face_of(row) for row in rows[sure]]
        # every uncertain candidate gets its closer look, large ones too: re-centred with context, the look rejects
        # big face-like texture (a painting behind a portrait) that a score floor alone lets through
        for row in rows[~sure]:
            box = np.concatenate([row[:2], row[:2] + row[2:4]])
            on_known = known is not None and len(known) and iou(box, known).max() >= FOLLOW_IOU
            # followed first when known; a follow that finds nothing leaves the candidate its closer look
            closer = (self._follow(full, box) if on_known else None) or self._closer_look(full, row)
            # a loose candidate box around a face already found re-detects that same face: keep it once
            if closer is not None and not any(contains(f.box, closer.box) for f in faces):
                faces.append(closer)
        return sorted(faces, key=lambda f: -f.score)

    def follow(self, image: np.ndarray, box: Sequence[float], bgr: bool = False) -> Face | None:
        """The face that was at ``box`` (x0, y0, x1, y1) a frame or a few ago, found again in a crop around it (as
        in the closer look, about 0.5 ms): its new box and landmarks, or None when it is gone. What lets a video
        loop detect the whole frame only on key frames and follow the faces it knows in between. The floor is the
        first look's (``CANDIDATE_SCORE``): the face was already accepted, a frame later it need only be there.

        The face keeps the size of ``box``; only its place and landmarks are new. Why: the 96 px look measures a face
        5 % larger than the whole-frame look does (the median on the demo clip; one in ten 20 % or more), and a loop
        that follows from the box it followed to compounds that until the face is too small in its crop to be found
        (keeping the size, fast model: 46 -> 37 faces missed at --detect-every 6, 47 -> 33 at 8, and fewer key
        frames forced by losses). The next whole-frame detection sets the size again."""
        return self._follow(image if bgr else cv2.cvtColor(image, cv2.COLOR_RGB2BGR), np.asarray(box, np.float32))

    def _follow(self, full: np.ndarray, box: np.ndarray) -> Face | None:
        rows = self._look_around(full, (box[:2] + box[2:]) / 2, float(max(box[2:] - box[:2])), CANDIDATE_SCORE,
                                 FOLLOW_CONTEXT, FOLLOW_PX, "follow")
        if not len(rows):
            return None
        overlap = iou(box, np.concatenate([rows[:, :2], rows[:, :2] + rows[:, 2:4]], axis=1))
        best = int(np.argmax(overlap))
        return face_of(rows[best]).sized(*(box[2:] - box[:2])) if overlap[best] >= FOLLOW_IOU else None

    def _closer_look(self, full: np.ndarray, row: np.ndarray) -> Face | None:
        """Re-detect one candidate in a crop of the original frame where its face is about CLOSER_LOOK_PX wide."""
        centre = row[:2] + row[2:4] / 2
        found = self._look_around(full, centre, float(max(row[2], row[3])), self.min_score)
        if not len(found):
            return None
        distance = np.linalg.norm(found[:, :2] + found[:, 2:4] / 2 - centre, axis=1)
        best = int(np.argmin(distance))
        if distance[best] > 0.25 * CLOSER_LOOK_CONTEXT * max(row[2], row[3]):
            return None  # what YuNet sees here is another face, not the candidate
        return face_of(found[best])

    def _look_around(self, full: np.ndarray, centre: np.ndarray, side: float, floor: float,
                     context: float = CLOSER_LOOK_CONTEXT, face_px: int = CLOSER_LOOK_PX,
                     look: str = "closer") -> np.ndarray:
        """Decoded rows scoring ``floor`` or more in a crop ``context`` x ``side`` around ``centre``, scaled so a
        face ``side`` wide is ``face_px`` there; in ``full``'s pixels."""
        crop, x0, y0 = square_crop(full, float(centre[0]), float(centre[1]), context * side)
        if crop is None:
            return np.zeros((0, 15), np.float32)
        target = round(context * face_px)
        zoom = target / crop.shape[0]
        crop = cv2.resize(crop, (target, target), interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
        found = self._run(crop, floor, look)
        found[:, :14] /= zoom
        found[:, [0, 4, 6, 8, 10, 12]] += x0
        found[:, [1, 5, 7, 9, 11, 13]] += y0
        return found
