"""The public Python API: find, embed, compare and identify faces in a few lines, on the device half only.

    import edgeface
    fr = edgeface.load()                                  # the shipped model, YuNet detection
    fr.verify("a.jpg", "b.jpg")                           # {'same': True, 'score': 0.83, 'threshold': 0.64}
    people = edgeface.Gallery("people.sqlite")
    people.enroll("obama", "obama.jpg")
    people.identify("two_people.jpg")                     # [{'name': 'obama', 'score': 0.91, 'box': [...], ...}]

Images are file paths or numpy arrays. Arrays are RGB uint8 (H, W, 3) like face_recognition's; pass ``bgr=True`` for
frames straight from OpenCV. Every problem is an :class:`edgeface.errors.EdgefaceError` naming it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.vision.align import align_face, chip_of
from edgeface.vision.detect import FaceFinder, main_face
from edgeface.vision.detector_options import DEFAULT_DETECT_SIZE, DEFAULT_DETECTOR, alignment_of, detector_value
from edgeface.vision.embed import Embedder, decision_threshold, embedder_identity, load_embedder
from edgeface.vision.face import Face, iou
from edgeface.vision.image import image_files, read_image

Image = str | Path | np.ndarray


def one_line_errors(kind: type, error: BaseException, traceback: Any, previous: Any = sys.excepthook) -> None:
    """A script that lets an EdgefaceError escape ends as the CLI does: one line naming the problem, exit 1, no
    traceback (EDGEFACE_DEBUG=1 shows it). Every other exception keeps Python's own report."""
    if issubclass(kind, EdgefaceError) and not os.environ.get("EDGEFACE_DEBUG"):
        print(f"edgeface: error: {error}", file=sys.stderr)
        return
    previous(kind, error, traceback)


if sys.excepthook is sys.__excepthook__:  # a hook someone else installed stays theirs
    sys.excepthook = one_line_errors
MIN_BOX_IOU = 0.3  # a given box and the detection inside it: the same face

@dataclass
class DetectedFace:
    """A face in an image: box (x0, y0, x1, y1) and landmarks (K, 2) in image pixels, detector score."""

    box: list[float]
    landmarks: list[list[float]]
    score: float

    @property
    def top_right_bottom_left(self) -> tuple[int, int, int, int]:
        """face_recognition's ``(top, right, bottom, left)`` order, rounded to pixels."""
        x0, y0, x1, y1 = self.box
        return round(y0), round(x1), round(y1), round(x0)

    def to_dict(self) -> dict[str, Any]:
        return {"box": self.box, "landmarks": self.landmarks, "score": self.score}


def as_rgb(image: Image, bgr: bool = False) -> np.ndarray:
    """A path or an array as an RGB uint8 (H, W, 3) array."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
        raise EdgefaceError(f"an image array must be uint8 (H, W, 3), got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array[..., ::-1] if bgr else array)


def public(face: Face) -> DetectedFace:
    return DetectedFace([round(float(v), 2) for v in face.box],
                        [[round(float(v), 2) for v in point] for point in face.keypoints], round(float(face.score), 4))


class FaceRecognizer:
    """A model and a detector, loaded once. Use :func:`edgeface.load` to make one."""

    def __init__(self, model: str | Path | None = None, detector: str = DEFAULT_DETECTOR,
                 detect_size: int = DEFAULT_DETECT_SIZE, threshold: float | None = None, threads: int = 1,
                 input_mean: float | None = None, input_scale: float | None = None,
                 channels: str | None = None) -> None:
        self.model = model  # as given: what a gallery remembers (``model_ref``)
        self.embedder: Embedder = load_embedder(model, threads=threads, mean=input_mean, scale=input_scale,
                                                channels=channels)
        self.detector = detector_value(detector)  # an unknown name is refused now, not at the first photo
        self.threads, self.detect_size = threads, detect_size
        self.given_threshold = threshold

    @cached_property
    def finder(self) -> FaceFinder:
        """Photo detection (with retries), built when first needed: a camera loop (``frames``) has its own
        detector and never pays for this one."""
        return FaceFinder(self.detector, self.threads, self.detect_size, alignment=self.embedder.alignment)

    @property
    def alignment(self) -> str:
        """Which landmarks this model's crops are aligned from with this detector: what a gallery records."""
        return alignment_of(self.detector, self.embedder.alignment)

    @cached_property
    def threshold(self) -> float:
        """The decision threshold: the one given, else the model's stored one. Settled when first needed, so a
        model without one can still detect, embed and enrol; matching with it is refused in one line."""
        return decision_threshold(self.embedder, self.given_threshold)

    def frames(self, gallery: Any, **tracking: Any) -> Any:
        """The frame recogniser (``recognize.loop.Recognizer``) on this model, detector and threshold against an
        open gallery store: what ``edgeface recognize``, ``Gallery.identify`` and ``edgeface serve`` run.
        ``tracking``: min_face, smooth, max_turn, confirm, detect_every."""
        from edgeface.recognize.loop import Recognizer

        return Recognizer(self.embedder, gallery, self.threshold, detector=self.detector, threads=self.threads,
                          detect_size=self.detect_size, **tracking)

    @property
    def model_id(self) -> str:
        return embedder_identity(self.embedder)

    def faces(self, image: Image, bgr: bool = False) -> tuple[np.ndarray, list[Face]]:
        rgb = as_rgb(image, bgr)
        return rgb, self.finder.find(rgb)

    def detect(self, image: Image, bgr: bool = False) -> list[DetectedFace]:
        """Every face in the image, highest score first."""
        return [public(f) for f in self.faces(image, bgr)[1]]

    def faces_at(self, image: Image, boxes: list | np.ndarray | None = None,
                 landmarks: list | np.ndarray | None = None, bgr: bool = False) -> tuple[np.ndarray, list[Face]]:
        """Faces where another program found them (face_recognition's ``known_face_locations``, a Frigate box):

        * ``boxes`` (N, 4) x0, y0, x1, y1 in image pixels: each box's landmarks are found by the detector inside
          the box with half a box of margin (the detection overlapping it most); a box holding no face is an error
          naming it.
        * ``landmarks`` (N, 5, 2): YuNet's five points (right eye, left eye, nose tip, right and left mouth
          corners, image left to right for a frontal face) used as they are.
        """
        rgb = as_rgb(image, bgr)
        if landmarks is not None:
            points = np.asarray(landmarks, np.float32)
            if points.ndim != 3 or points.shape[1:] != (5, 2) or not np.isfinite(points).all():
                raise EdgefaceError(f"landmarks must be (N, 5, 2) finite pixel coordinates, got {points.shape}")
            return rgb, [Face(np.concatenate([p.min(0), p.max(0)]), 1.0, p) for p in points]
        found = []
        for box in check_boxes(boxes, rgb.shape):
            x0, y0, x1, y1 = box
            margin = 0.5 * max(x1 - x0, y1 - y0)
            left, top = int(max(0, x0 - margin)), int(max(0, y0 - margin))
            crop = rgb[top:int(min(rgb.shape[0], y1 + margin)), left:int(min(rgb.shape[1], x1 + margin))]
            inside = [f.shifted(-left, -top) for f in self.finder.find(np.ascontiguousarray(crop))]
            overlap = iou(box, np.stack([f.box for f in inside])) if inside else np.zeros(0)
            if not len(overlap) or overlap.max() < MIN_BOX_IOU:
                raise EdgefaceError(f"no face found at box {[round(float(v)) for v in box]}")
            found.append(inside[int(np.argmax(overlap))])
        return rgb, found

    def embed(self, image: Image, bgr: bool = False, all_faces: bool = False, aligned: bool = False,
              boxes: list | np.ndarray | None = None, landmarks: list | np.ndarray | None = None) -> np.ndarray:
        """The embedding (D,) of the image's main face (largest, most central), or (N, D) of every face with
        ``all_faces``, or of the faces at given ``boxes`` / ``landmarks`` (see ``faces_at``). ``aligned=True``: the
        image is already a crop on the model's chip (from ``align``)."""
        if boxes is not None or landmarks is not None:
            rgb, faces = self.faces_at(image, boxes, landmarks, bgr)
            return self.embedder.embed_faces(rgb, faces)
        if aligned:
            crop = as_rgb(image, bgr)
            side = chip_of(self.embedder.alignment)[1]
            if crop.shape[:2] != (side, side):
                raise EdgefaceError(f"an aligned face for this model is {side}x{side} (from .align), got "
                                    f"{crop.shape[1]}x{crop.shape[0]}")
            return self.embedder.embed(crop[None])[0]
        rgb, found = self.faces(image, bgr)
        if not found:
            raise EdgefaceError(f"no face found in {image if isinstance(image, (str, Path)) else 'the image'}")
        chosen = found if all_faces else [main_face(found, rgb.shape)]
        vectors = self.embedder.embed_faces(rgb, chosen)
        return vectors if all_faces else vectors[0]

    def align(self, image: Image, bgr: bool = False) -> np.ndarray:
        """The main face aligned to the model's chip (RGB uint8; 112x112 ArcFace, or dlib's 150x150 chip)."""
        rgb, found = self.faces(image, bgr)
        if not found:
            raise EdgefaceError("no face found")
        return align_face(rgb, main_face(found, rgb.shape), self.embedder.alignment)

    def verify(self, a: Image, b: Image, bgr: bool = False, all_faces: bool = False) -> dict[str, Any]:
        """Are two images the same person? ``{same, score, threshold, faces, boxes}`` (cosine similarity).

        The main face (largest, most central) of each is compared, and ``faces`` says how many each image has, so
        a group photo is never silently reduced to one face; ``boxes`` are the two faces compared. ``all_faces``:
        every face of ``a`` against every face of ``b``, the best pair decides (is this person anywhere in the
        other photo?)."""
        found = []
        for label, image in (("first", a), ("second", b)):
            rgb, faces = self.faces(image, bgr)
            if not faces:
                raise EdgefaceError(f"no face found in the {label} image"
                                    f"{f' ({image})' if isinstance(image, (str, Path)) else ''}")
            chosen = faces if all_faces else [main_face(faces, rgb.shape)]
            found.append((len(faces), chosen, self.embedder.embed_faces(rgb, chosen)))
        scores = found[0][2] @ found[1][2].T
        i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
        score = float(scores[i, j])
        return {"same": score >= self.threshold, "score": round(score, 4), "threshold": round(self.threshold, 4),
                "faces": [found[0][0], found[1][0]], "boxes": [public(found[0][1][i]).box, public(found[1][1][j]).box]}

    def compare(self, known: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        """face_recognition's ``compare_faces``: for each known embedding, is ``candidate`` the same person at this
        model's threshold? (bool array)"""
        return similarity(known, candidate) >= self.threshold


def similarity(known: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Cosine similarity of ``candidate`` (D,) to each of ``known`` (N, D) or (D,): 1 same direction, higher is
    more alike (face_recognition's ``face_distance`` is lower-is-closer; this is its opposite, in [-1, 1])."""
    known, candidate = np.atleast_2d(np.asarray(known, np.float32)), np.asarray(candidate, np.float32)
    if candidate.ndim != 1 or known.shape[1] != candidate.shape[0]:
        raise EdgefaceError(f"cannot compare embeddings of shapes {known.shape} and {candidate.shape}")
    norms = np.linalg.norm(known, axis=1) * np.linalg.norm(candidate)
    if not np.isfinite(known).all() or not np.isfinite(candidate).all() or (norms == 0).any():
        raise EdgefaceError("embeddings must be finite and non-zero")
    return (known @ candidate) / norms


def check_boxes(boxes: list | np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1 boxes with area, at least partly inside the image."""
    try:
        array = np.asarray(boxes, np.float32).reshape(-1, 4) if boxes is not None and len(boxes) \
            else np.zeros((0, 4), np.float32)
    except (TypeError, ValueError):
        raise EdgefaceError("boxes must be (N, 4): x0, y0, x1, y1 in image pixels") from None
    h, w = shape[:2]
    for box in array:
        x0, y0, x1, y1 = box
        if not np.isfinite(box).all() or x1 <= x0 or y1 <= y0 or x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            raise EdgefaceError(f"box {box.tolist()} is not an x0, y0, x1, y1 box inside the {w}x{h} image")
    return array


def detect_files(target: str | Path, detector: str = DEFAULT_DETECTOR,
                 detect_size: int = DEFAULT_DETECT_SIZE) -> dict:
    """Every face in an image or a folder of images (``edgeface detect``): one row per face with its file, box,
    landmarks, score and face_recognition's (top, right, bottom, left); files that are no image, or cannot be read,
    are listed under ``skipped`` with the reason. Raises only when no image at all could be read."""
    files, skipped = image_files(Path(target))
    finder = FaceFinder(detector, detect_size=detect_size)
    rows, unreadable = [], 0
    for path in files:
        try:
            faces = [public(f) for f in finder.find(read_image(path))]
        except EdgefaceError as exc:
            unreadable += 1
            skipped[str(path)] = str(exc)
            continue
        rows += [{"file": str(path), **f.to_dict(), "top_right_bottom_left": list(f.top_right_bottom_left)}
                 for f in faces]
    if unreadable == len(files):
        raise EdgefaceError(f"no image of {target} could be read")
    return {"detector": detector, "images": len(files), "unreadable": unreadable, "skipped": skipped, "faces": rows}


def load(model: str | Path | None = None, **options: Any) -> FaceRecognizer:
    """A ready recogniser: the shipped model unless ``model`` names a .tflite (or "dlib"); ``options`` are
    detector, detect_size, threshold, threads, input_mean, input_scale, channels."""
    return FaceRecognizer(model, **options)


class Gallery:
    """Enrolled people in a SQLite file, bound to one model: ``Gallery(path)``, then enroll / identify / remove."""

    def __init__(self, path: str | Path | None = None, recognizer: FaceRecognizer | None = None,
                 model: str | Path | None = None, create: bool = True, read_only: bool = False,
                 **options: Any) -> None:
        """Without ``model`` (or ``recognizer``), the model the gallery file remembers, else the shipped one.
        ``create=False``: a missing file is an error; ``read_only``: opened for matching only (a camera loop
        beside an enrolling process). ``options`` go to :func:`load`."""
        from edgeface.recognize.gallery import bind_gallery, model_for

        r = self.recognizer = recognizer or load(model_for(path, model), **options)
        self.store = bind_gallery(path, r.model, r.embedder, r.alignment, create=create, read_only=read_only)
        self.path = self.store.path
        self._frames: Any = None

    def enroll(self, name: str, *images: Image | list[Image], bgr: bool = False,
               store_faces: bool = True) -> dict[str, Any]:
        """Add photos of one person: paths, folders of photos, arrays (``bgr=True`` for OpenCV frames), or lists
        of them. Each is quality-checked like ``edgeface enroll``, and its face kept (a small crop) for
        ``edgeface gallery upgrade`` unless ``store_faces=False``.

        Returns {"name", "accepted", "rejected": {photo: reason}, "skipped", "templates"}; raises EdgefaceError
        naming each photo and its reason when none was enrolled (nor already was)."""
        from edgeface.recognize.enroll import enroll_person

        items: list = []
        for item in images:
            for one in (item if isinstance(item, (list, tuple)) else [item]):
                if isinstance(one, (str, Path)) and Path(one).is_dir():
                    items += image_files(Path(one))[0]
                else:
                    items.append(one if isinstance(one, (str, Path)) else as_rgb(one, bgr))
        if not items:
            raise EdgefaceError(f"no photo given for {name!r}")
        result = enroll_person(self.store, name, items, self.recognizer.finder, self.recognizer.embedder, store_faces)
        if not result.accepted and not result.skipped:
            reasons = "; ".join(f"{photo}: {why}" for photo, why in result.rejected.items())
            raise EdgefaceError(f"nothing enrolled for {result.name!r}: {reasons}")
        return asdict(result)

    def enroll_folder(self, root: str | Path, store_faces: bool = True) -> dict[str, dict[str, Any]]:
        """``root/<person>/<photos>``: every person at once (as ``edgeface enroll --dir``); results by name. A
        person none of whose photos passed is in the results with the reasons; raises only when nobody was."""
        from edgeface.recognize.enroll import enroll_person, person_folders

        r = self.recognizer
        results = {person: asdict(enroll_person(self.store, person, paths, r.finder, r.embedder, store_faces))
                   for person, paths in person_folders(Path(root)).items()}
        if not any(x["accepted"] or x["skipped"] for x in results.values()):
            reasons = "; ".join(f"{p}: {why}" for x in results.values() for p, why in x["rejected"].items())
            raise EdgefaceError(f"no photo in {root} was enrolled: {reasons}")
        return results

    def identify(self, image: Image, bgr: bool = False) -> list[dict[str, Any]]:
        """Every face in the image, as ``edgeface recognize --json`` reports a photo (``RecognisedFace``): ``name``
        the enrolled person it matches or None, the best ``candidate`` and its ``score``, box, landmarks, detection
        score and head turn; a face too small or turned away is not compared and says so in ``reason``."""
        if self._frames is None:
            self._frames = self.recognizer.frames(self.store)
        frame = np.ascontiguousarray(as_rgb(image, bgr)[..., ::-1])
        return [face.to_dict() for face in self._frames.process(frame, still=True)]

    def remove(self, name: str) -> None:
        self.store.remove(name)

    def people(self) -> list[dict[str, Any]]:
        return self.store.people()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["DetectedFace", "FaceRecognizer", "Gallery", "load", "similarity"]

