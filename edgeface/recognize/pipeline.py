"""The one recognition pipeline every surface runs: model + detector + chip + threshold, bound to a gallery.

``edgeface verify``, ``enroll``, ``detect``, ``recognize``, ``serve``, ``gallery upgrade``, ``bench --pipeline`` and
the Python API (``edgeface.load``, ``edgeface.Gallery``) each build a ``Pipeline`` from a ``PipelineConfig`` and call
it: the same photo policy (``FaceFinder``), the same head-turn gate, the same enrolment rule and the same face record
(``FaceRecord``) whichever door a request comes in by.

Images are file paths or RGB uint8 arrays; ``bgr=True`` takes OpenCV frames as they are (the detector reads BGR
natively, so a frame is never converted whole just to be detected).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.recognize.config import PipelineConfig
from edgeface.recognize.enroll import EnrolResult, enroll_person, face_template, require_enrolled
from edgeface.recognize.gallery import Gallery, bind_gallery, model_for
from edgeface.recognize.loop import Recognizer
from edgeface.recognize.results import FaceRecord, rounded, rounded_box
from edgeface.vision.align import align_face, chip_of
from edgeface.vision.detect import FaceFinder, main_face
from edgeface.vision.detector_options import DEFAULT_MAX_TURN, alignment_of
from edgeface.vision.embed import (
    Embedder,
    decision_threshold,
    embedder_identity,
    load_embedder,
    manifest_gates,
    template_embedder,
    threshold_warning,
)
from edgeface.vision.face import SAME_FACE_IOU, Face, iou
from edgeface.vision.image import as_array, as_rgb, image_files
from edgeface.vision.quality import Gates

Image = str | Path | np.ndarray


class Pipeline:
    """A model and a detector, loaded once, with every decision of the configuration applied the same way."""

    def __init__(self, config: PipelineConfig | None = None, load_model: bool = True) -> None:
        """``load_model=False``: detection only (``edgeface detect``), no model file is read."""
        self.config = config or PipelineConfig()
        c = self.config
        self.model = c.model  # as given: what a gallery remembers (``model_ref``)
        self.embedder: Embedder = load_embedder(c.model, threads=c.threads, mean=c.input_mean, scale=c.input_scale,
                                                channels=c.channels) if load_model else None  # type: ignore[assignment]
        self.detector, self.threads, self.detect_size = c.detector, c.threads, c.detect_size

    @classmethod
    def for_gallery(cls, path: str | Path | None, config: PipelineConfig) -> Pipeline:
        """The pipeline a gallery file needs: the model given, else the one the gallery remembers."""
        return cls(config.but(model=model_for(path, config.model)))

    # -- what the configuration decides ---------------------------------------------------------------------------

    @cached_property
    def templates(self) -> Embedder:
        """What makes enrolled templates (``vision.embed.template_embedder``): the model itself, or with
        ``templates: flip`` in its manifest the same interpreter averaging each face and its mirror."""
        return template_embedder(self.embedder)

    @cached_property
    def finder(self) -> FaceFinder:
        """Finding faces (photos with retries; ``finder.video`` for frames), built when first needed."""
        return FaceFinder(self.detector, self.threads, self.detect_size, min_face=self.config.min_face,
                          alignment=getattr(self.embedder, "alignment", None))

    @property
    def alignment(self) -> str:
        """Which landmarks this model's crops are aligned from with this detector: what a gallery records."""
        return alignment_of(self.detector, self.embedder.alignment)

    @cached_property
    def threshold(self) -> float:
        """The decision threshold: the one given, else the model's stored one. Settled when first needed, so a
        model without one can still detect, embed and enrol; matching with it is refused in one line."""
        return decision_threshold(self.embedder, self.config.threshold)

    @property
    def max_turn(self) -> float:
        """The head-turn gate: the one given, else the model's manifest's (``gates.max_turn``), else the default."""
        if self.config.max_turn is not None:
            return self.config.max_turn
        return float(manifest_gates(self.embedder).get("max_turn", DEFAULT_MAX_TURN))

    @cached_property
    def gates(self) -> Gates:
        """The model's light gates (``vision.quality.Gates``) from its manifest; none when it has none or the
        configuration turns them off."""
        if not self.config.light_gates:
            return Gates()
        return Gates.from_manifest(manifest_gates(self.embedder))

    @property
    def warning(self) -> str | None:
        """Why this threshold may let more strangers through on a camera than its FAR says (None: no reason)."""
        return None if self.config.threshold is not None else threshold_warning(self.embedder)

    @property
    def model_id(self) -> str:
        return embedder_identity(self.embedder)

    # -- galleries --------------------------------------------------------------------------------------------------

    def open_gallery(self, path: str | Path | None, create: bool = True, read_only: bool = False) -> Gallery:
        """The gallery at ``path`` bound to this model and alignment (refused if enrolled with others)."""
        return bind_gallery(path, self.model, self.embedder, self.alignment, create=create, read_only=read_only)

    def frames(self, gallery: Gallery, follow: bool = True, **tracking: Any) -> Recognizer:
        """The frame recogniser (tracking, confirmation, key frames) on this pipeline against an open gallery:
        what ``recognize``, ``serve``'s camera, ``Gallery.identify`` and ``Gallery.watch`` run. ``tracking``
        overrides the config's video settings for this recogniser (smooth, confirm, max_turn, detect_every,
        min_face), checked as the config checks them. ``follow``: when another process moves the gallery to a new
        model mid-run (``gallery upgrade``), carry on with that model (``moved``) instead of raising
        ``GalleryMoved``."""
        c = self.config.but(**tracking) if tracking else self.config
        return Recognizer(self.embedder, gallery, self.threshold, self.finder, min_face=c.min_face, smooth=c.smooth,
                          max_turn=self.max_turn if c.max_turn is None else c.max_turn, confirm=c.confirm,
                          detect_every=c.detect_every, gates=self.gates,
                          moved=(lambda: self.moved(gallery, **tracking)) if follow else None)

    def moved(self, gallery: Gallery, **tracking: Any) -> Recognizer:
        """The recogniser for ``gallery`` after another process moved it to a new model: that model, loaded now,
        with this configuration's other settings."""
        fresh = Pipeline.for_gallery(gallery.path, self.config.but(model=None))
        store = fresh.open_gallery(gallery.path, create=False, read_only=gallery.read_only)
        return fresh.frames(store, **tracking)

    def enroll(self, gallery: Gallery, name: str, photos: list, store_faces: bool = True,
               new_person: bool = False) -> EnrolResult:
        """One person's photos, each quality-checked (the reason for each refusal); nothing written unless one
        passes. Paths, RGB arrays, or ``(label, bytes or RGB array)`` pairs. The one enrolment rule of every
        surface: a face that already matches another enrolled person is refused, naming them, unless
        ``new_person`` (a model without a threshold cannot tell, and enrols)."""
        threshold = None if self.config.threshold is None and self.embedder.threshold is None else self.threshold
        return enroll_person(gallery, name, photos, self.finder, self.embedder, store_faces, self.max_turn,
                             threshold, new_person, self.gates)

    def enroll_people(self, gallery: Gallery, people: dict[str, list], store_faces: bool = True,
                      new_person: bool = False) -> list[EnrolResult]:
        """Several people at once; raises (naming every photo's reason) when nobody was enrolled."""
        return require_enrolled([self.enroll(gallery, name, photos, store_faces, new_person)
                                 for name, photos in people.items()])

    def looks_like(self, gallery: Gallery, image: Image, bgr: bool = False) -> dict:
        """What enrolling ``image`` would do, without enrolling: its one usable face (or why it has none), that
        face's box and its closest enrolled person with the score: what a page shows before asking to confirm."""
        rgb = as_rgb(image, bgr)
        try:
            embedding, _, face = face_template(rgb, self.finder, self.embedder, self.max_turn, self.gates)
        except EdgefaceError as exc:
            return {"usable": False, "reason": str(exc)}
        match = gallery.match(embedding[None], self.threshold)[0]
        return {"usable": True, "box": rounded_box(face.box), "candidate": match.person,
                "score": rounded(match.score, "score"), "name": match.name}

    # -- photos -----------------------------------------------------------------------------------------------------

    def faces(self, image: Image, bgr: bool = False) -> tuple[np.ndarray, list[Face]]:
        """The image as RGB and its faces, highest detection score first."""
        rgb = as_rgb(image, bgr)
        return rgb, self.finder.find(rgb)

    def detect(self, image: Image, bgr: bool = False) -> list[FaceRecord]:
        """Every face in the image as a record (box, landmarks, detection score), highest score first. A BGR
        frame is detected as it is, with no whole-frame conversion."""
        array = as_array(image)
        faces = self.finder.find(array, bgr=bgr and not isinstance(image, (str, Path)))
        return [FaceRecord.detected(f) for f in faces]

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
            if not len(overlap) or overlap.max() < SAME_FACE_IOU:
                raise EdgefaceError(f"no face found at box {[round(float(v)) for v in box]}")
            found.append(inside[int(np.argmax(overlap))])
        return rgb, found

    def embed(self, image: Image, bgr: bool = False, all_faces: bool = False, aligned: bool = False,
              boxes: list | np.ndarray | None = None, landmarks: list | np.ndarray | None = None,
              template: bool = False) -> np.ndarray:
        """The embedding (D,) of the image's main face (largest, most central), or (N, D) of every face with
        ``all_faces``, or of the faces at given ``boxes`` / ``landmarks`` (see ``faces_at``). ``aligned=True``: the
        image is already a crop on the model's chip (from ``align``). ``template=True``: made as an enrolled
        template is (``templates``: the default averages the face and its mirror); the threshold holds between a
        template and a probe (``template=False``), the comparison ``recognize`` makes."""
        embedder = self.templates if template else self.embedder
        if boxes is not None or landmarks is not None:
            rgb, faces = self.faces_at(image, boxes, landmarks, bgr)
            return embedder.embed_faces(rgb, faces)
        if aligned:
            crop = as_rgb(image, bgr)
            side = chip_of(self.embedder.alignment)[1]
            if crop.shape[:2] != (side, side):
                raise EdgefaceError(f"an aligned face for this model is {side}x{side} (from .align), got "
                                    f"{crop.shape[1]}x{crop.shape[0]}")
            return embedder.embed(crop[None])[0]
        rgb, found = self.faces(image, bgr)
        if not found:
            raise EdgefaceError(f"no face found in {image if isinstance(image, (str, Path)) else 'the image'}")
        chosen = found if all_faces else [main_face(found, rgb.shape)]
        vectors = embedder.embed_faces(rgb, chosen)
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
        other photo?). ``a`` is embedded as an enrolled template is, ``b`` as a camera frame is: the comparison the
        threshold was placed for."""
        found = []
        for label, image, embedder in (("first", a, self.templates), ("second", b, self.embedder)):
            rgb, faces = self.faces(image, bgr)
            if not faces:
                raise EdgefaceError(f"no face found in the {label} image"
                                    f"{f' ({image})' if isinstance(image, (str, Path)) else ''}")
            chosen = faces if all_faces else [main_face(faces, rgb.shape)]
            found.append((len(faces), chosen, embedder.embed_faces(rgb, chosen)))
        scores = found[0][2] @ found[1][2].T
        i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
        score = float(scores[i, j])
        boxes = [rounded_box(found[0][1][i].box), rounded_box(found[1][1][j].box)]
        return {"same": score >= self.threshold, "score": round(score, 4), "threshold": round(self.threshold, 4),
                "faces": [found[0][0], found[1][0]], "boxes": boxes}

    def compare(self, known: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        """face_recognition's ``compare_faces``: for each known embedding, is ``candidate`` the same person at this
        model's threshold? (bool array; empty for no known faces)"""
        return similarity(known, candidate) >= self.threshold

    def identify(self, recognizer: Recognizer, image: Image, bgr: bool = False) -> list[FaceRecord]:
        """Every face of one photo, recognised (no track carried over from anything before)."""
        if isinstance(image, (str, Path)) or not bgr:
            frame = cv2.cvtColor(as_rgb(image), cv2.COLOR_RGB2BGR)
        else:
            frame = np.ascontiguousarray(as_array(image))
        return recognizer.process(frame, still=True)

    def watch(self, recognizer: Recognizer, source: str | int | Path | Iterable[np.ndarray],
              ) -> Iterator[tuple[np.ndarray, list[FaceRecord]]]:
        """Every frame of a camera index, video file, stream URL, image folder, or any iterable of BGR frames
        (OpenCV's order), recognised as ``edgeface recognize`` recognises them: faces tracked across frames, named
        once confirmed, followed between key frames. Yields each BGR frame with its faces."""
        if isinstance(source, (str, int, Path)):
            from edgeface.recognize.capture import Capture

            with Capture(str(source)) as capture:
                still = capture.kind in ("folder", "image")
                for frame in capture:
                    if frame.image is not None:
                        yield frame.image, recognizer.process(frame.image, still=still)
            return
        for frame in source:
            image = np.ascontiguousarray(as_array(frame))
            yield image, recognizer.process(image)


def similarity(known: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Cosine similarity of ``candidate`` (D,) to each of ``known`` (N, D) or (D,): 1 same direction, higher is
    more alike (face_recognition's ``face_distance`` is lower-is-closer; this is its opposite, in [-1, 1]). No known
    faces give an empty result, as face_recognition's does."""
    try:
        known, candidate = np.asarray(known, np.float32), np.asarray(candidate, np.float32)
    except (TypeError, ValueError):
        raise EdgefaceError("embeddings must be numeric arrays") from None
    if known.size == 0:
        return np.zeros(0, np.float32)
    known = np.atleast_2d(known)
    if candidate.ndim != 1 or known.ndim != 2 or known.shape[1] != candidate.shape[0]:
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


def photo_items(images: Iterable[Any], bgr: bool = False) -> list:
    """What a user hands ``enroll``: paths, folders of photos, arrays (BGR with ``bgr``), or lists of them, as
    the enrolment rule takes them (paths, RGB arrays)."""
    items: list = []
    for item in images:
        for one in (item if isinstance(item, (list, tuple)) else [item]):
            if isinstance(one, (str, Path)) and Path(one).is_dir():
                items += image_files(Path(one))[0]
            else:
                items.append(one if isinstance(one, (str, Path)) else as_rgb(one, bgr))
    return items


def detect_files(pipeline: Pipeline, target: str | Path) -> dict:
    """Every face in an image or a folder of images (``edgeface detect``): one record per face with its file and
    face_recognition's (top, right, bottom, left); files that are no image, or cannot be read, are listed under
    ``skipped`` with the reason. Raises only when no image at all could be read."""
    from edgeface.vision.image import read_image

    files, skipped = image_files(Path(target))
    rows, unreadable = [], 0
    for path in files:
        try:
            faces = pipeline.detect(read_image(path))
        except EdgefaceError as exc:
            unreadable += 1
            skipped[str(path)] = str(exc)
            continue
        rows += [{"file": str(path), **f.to_dict(), "top_right_bottom_left": list(f.top_right_bottom_left)}
                 for f in faces]
    if unreadable == len(files):
        raise EdgefaceError(f"no image of {target} could be read")
    return {"detector": pipeline.detector, "images": len(files), "unreadable": unreadable, "skipped": skipped,
            "faces": rows}
