"""The public Python API: find, embed, compare and identify faces in a few lines, on the device half only.

    import edgeface
    fr = edgeface.load()                                  # the shipped model, YuNet detection
    fr.verify("a.jpg", "b.jpg")                           # {'same': True, 'score': 0.83, 'threshold': 0.64}
    people = edgeface.Gallery("people.sqlite")
    people.enroll("obama", "obama.jpg")
    people.identify("two_people.jpg")                     # [{'name': 'obama', 'score': 0.91, 'box': [...]}, ...]

Images are file paths or numpy arrays. Arrays are RGB uint8 (H, W, 3) like face_recognition's; pass ``bgr=True`` for
frames straight from OpenCV. Every problem is an :class:`edgeface.errors.EdgefaceError` naming it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.manifest import check_threshold
from edgeface.vision.align import align_face, chip_of
from edgeface.vision.detect import FaceFinder, main_face
from edgeface.vision.detector_options import DEFAULT_DETECT_SIZE, DEFAULT_DETECTOR
from edgeface.vision.embed import Embedder, embedder_identity, load_embedder
from edgeface.vision.face import Face
from edgeface.vision.image import read_image

Image = str | Path | np.ndarray


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
        self.embedder: Embedder = load_embedder(model, threads=threads, mean=input_mean, scale=input_scale,
                                                channels=channels)
        self.detector = getattr(detector, "value", detector)
        self.finder = FaceFinder(self.detector, threads, detect_size, alignment=self.embedder.alignment)
        limit = threshold if threshold is not None else self.embedder.threshold
        if limit is None:
            raise EdgefaceError(f"{self.embedder.name} has no calibrated threshold: pass threshold=...")
        self.threshold = check_threshold(limit, "threshold")

    @property
    def model_id(self) -> str:
        return embedder_identity(self.embedder)

    def faces(self, image: Image, bgr: bool = False) -> tuple[np.ndarray, list[Face]]:
        rgb = as_rgb(image, bgr)
        return rgb, self.finder.find(rgb)

    def detect(self, image: Image, bgr: bool = False) -> list[DetectedFace]:
        """Every face in the image, highest score first."""
        return [public(f) for f in self.faces(image, bgr)[1]]

    def embed(self, image: Image, bgr: bool = False, all_faces: bool = False, aligned: bool = False) -> np.ndarray:
        """The embedding (D,) of the image's main face (largest, most central), or (N, D) of every face with
        ``all_faces``. ``aligned=True``: the image is already a crop on the model's chip (from ``align``)."""
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

    def verify(self, a: Image, b: Image) -> dict[str, Any]:
        """Are the main faces of two images the same person? ``{same, score, threshold}`` (cosine similarity)."""
        score = float(np.dot(self.embed(a), self.embed(b)))
        return {"same": score >= self.threshold, "score": round(score, 4), "threshold": round(self.threshold, 4)}


def load(model: str | Path | None = None, **options: Any) -> FaceRecognizer:
    """A ready recogniser: the shipped model unless ``model`` names a .tflite (or "dlib"); ``options`` are
    detector, detect_size, threshold, threads, input_mean, input_scale, channels."""
    return FaceRecognizer(model, **options)


class Gallery:
    """Enrolled people in a SQLite file, bound to one model: ``Gallery(path)``, then enroll / identify / remove."""

    def __init__(self, path: str | Path | None = None, recognizer: FaceRecognizer | None = None,
                 model: str | Path | None = None, **options: Any) -> None:
        from edgeface.recognize.gallery import Gallery as Store

        self.recognizer = recognizer or load(model, **options)
        r = self.recognizer
        self.store = Store(path, r.model_id, r.embedder.size, alignment=r.finder.alignment)
        self.path = self.store.path

    def enroll(self, name: str, *images: Image, store_faces: bool = True) -> dict[str, Any]:
        """Add photos of one person (paths or arrays); each is quality-checked like ``edgeface enroll``, and its face
        kept (a small crop) for ``edgeface gallery upgrade`` unless ``store_faces=False``.

        Returns {"name", "accepted", "rejected": {photo: reason}, "skipped", "templates"}."""
        from edgeface.recognize.enroll import enrol

        return asdict(enrol(self.store, name, list(images), self.recognizer.finder, self.recognizer.embedder,
                            store_faces))

    def identify(self, image: Image, bgr: bool = False) -> list[dict[str, Any]]:
        """Every face in the image with the enrolled person it matches (``name`` None below the threshold),
        best candidate and score."""
        r = self.recognizer
        rgb, found = r.faces(image, bgr)
        if not found:
            return []
        matches = self.store.match(r.embedder.embed_faces(rgb, found), r.threshold)
        return [{"name": m.name, "score": round(m.score, 4), "candidate": m.person, "box": public(f).box,
                 "detection": public(f).score} for f, m in zip(found, matches, strict=True)]

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


__all__ = ["DetectedFace", "FaceRecognizer", "Gallery", "load"]

