"""Enrolment: photos of a person -> quality-checked templates in the gallery, with a reason for every reject.

A template is only as good as its photo: exactly one face, large enough, facing the camera, sharp enough.
Rejected photos are reported with the reason so the user can retake them; nothing is written for a person until
all their photos have been processed (one transaction).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.recognize.gallery import MAX_STORED_FACE, Gallery, StoredFace, check_name
from edgeface.vision.align import align_face
from edgeface.vision.chip import SHARPNESS_CHIP
from edgeface.vision.detect import FaceFinder
from edgeface.vision.embed import Embedder, template_embedder
from edgeface.vision.face import Face
from edgeface.vision.image import check_image_file, decode_image, is_image, square_jpeg
from edgeface.vision.quality import MAX_TURN, Gates, face_measures, sharpness

MIN_EYE_DISTANCE = 24.0  # pixels between the eyes in the source photo
MIN_SHARPNESS = 40.0  # variance of the Laplacian of the aligned grey face (sharp photos: 600-2400)


@dataclass
class EnrolResult:
    name: str
    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # photos already enrolled (same sha256)
    templates: int = 0

    @property
    def enrolled(self) -> bool:
        """The one rule of when a person counts as enrolled by a call: a photo was accepted now, or is already in
        the gallery (the same bytes). Every surface (CLI, API, serve) answers success or failure by it."""
        return bool(self.accepted or self.skipped)

    def to_dict(self) -> dict:
        return asdict(self)


def require_enrolled(results: list[EnrolResult]) -> list[EnrolResult]:
    """The results, or EdgefaceError naming each refused photo and its reason when nobody was enrolled."""
    if not any(r.enrolled for r in results):
        reasons = "; ".join(f"{photo}: {why}" for r in results for photo, why in r.rejected.items())
        who = repr(results[0].name) if len(results) == 1 else "anyone"
        raise EdgefaceError(f"nothing enrolled for {who}: {reasons or 'no photo given'}")
    return results


def keep_face(image: np.ndarray, face: Face) -> StoredFace:
    """The face in a square twice its size (black beyond the photo's edges), at most MAX_STORED_FACE pixels a side
    (the face keeps about half of that: sharper than any model's chip needs), as JPEG q95, with the detection moved
    into its coordinates: what ``gallery upgrade`` needs to align and embed it for another model, and no more of the
    photo."""
    cx, cy = (face.box[:2] + face.box[2:]) / 2
    kept = square_jpeg(image, cx, cy, 2 * max(face.width, face.height), MAX_STORED_FACE, 95, rgb=True)
    if kept is None:
        raise EdgefaceError("the face lies outside the photo")
    jpeg, x0, y0, scale = kept
    shift = np.array([x0, y0], np.float32)
    box = ((face.box.reshape(2, 2) - shift) * scale).reshape(-1)
    points = (face.keypoints - shift) * scale
    return StoredFace(jpeg, [round(float(v), 2) for v in box],
                      [[round(float(x), 2), round(float(y), 2)] for x, y in points])


def face_template(image: np.ndarray, finder: FaceFinder, embedder: Embedder, max_turn: float = MAX_TURN,
                  gates: Gates | None = None) -> tuple[np.ndarray, float, Face]:
    """One embedding, its quality and the face, for a photo, or EdgefaceError with the reason it is unusable (the
    model's light ``gates`` too: a template is held to what a camera frame is held to)."""
    faces = finder.find(image)
    if not faces:
        raise EdgefaceError("no face found")
    if len(faces) > 1:
        raise EdgefaceError(f"{len(faces)} faces found, need exactly one")
    face = faces[0]
    eyes = float(np.linalg.norm(face.keypoints[0] - face.keypoints[1]))
    if eyes < MIN_EYE_DISTANCE:
        raise EdgefaceError(f"face too small ({eyes:.0f} px between the eyes, need {MIN_EYE_DISTANCE:.0f})")
    turn = finder.turn(image, face)
    if turn > max_turn:
        raise EdgefaceError(f"face turned away (turn {turn:.1f}, at most {max_turn}): use a photo facing the camera")
    sharp = sharpness(SHARPNESS_CHIP.align(image, face.keypoints))
    if sharp < MIN_SHARPNESS:
        raise EdgefaceError(f"too blurred (sharpness {sharp:.0f}, need {MIN_SHARPNESS:.0f})")
    if gates is not None and gates.active:
        why = gates.reason(face_measures(align_face(image, face, getattr(embedder, "alignment", None)), image, face))
        if why is not None:
            raise EdgefaceError(f"{why} for this model to hold its false-accept rate: use a sharp photo in even light")
    return embedder.embed_faces(image, [face])[0], sharp, face


def lookalike(gallery: Gallery, name: str, embedding: np.ndarray, threshold: float | None) -> str | None:
    """Why a face may not be enrolled as ``name`` without the caller saying it is a new person: it already matches
    somebody else in the gallery (None: it does not, or no threshold to decide with). Enrolling it anyway makes one
    person two, and every event announces both; the usual cause is the wrong name or the wrong face in frame."""
    if threshold is None:
        return None
    match = gallery.match(embedding[None], threshold)[0]
    if match.name is None or match.name == name:
        return None
    return (f"looks like {match.name} ({match.score:.2f}), who is enrolled: add it to {match.name}, or say it is "
            "a new person")


def enroll_person(gallery: Gallery, name: str, images: list, finder: FaceFinder, embedder: Embedder,
                  store_faces: bool = True, max_turn: float = MAX_TURN, threshold: float | None = None,
                  new_person: bool = False, gates: Gates | None = None) -> EnrolResult:
    """Enrol one person's photos (paths, RGB uint8 arrays, or ``(label, bytes or array)`` pairs: an upload's file
    name and contents); a photo already in the gallery (same bytes) is skipped, not doubled. ``store_faces``: keep
    each face (a crop with margin, see ``keep_face``) so a later model can re-embed it without the photos; off for
    those who must not store face images. A face that already matches someone else at ``threshold`` is refused
    (``lookalike``) unless ``new_person``. Templates are made as the model's manifest says (``template_embedder``:
    flip-averaged for the default). A photo enrolled under another name is refused, naming who holds it."""
    result = EnrolResult(check_name(name))
    embedder = template_embedder(embedder)
    known = gallery.known_hashes()
    rows, hashes, quality, kept = [], [], [], []
    for k, item in enumerate(images):
        label = str(item) if isinstance(item, (str, Path)) else f"image {k + 1}"
        if isinstance(item, tuple):
            label, item = item
        try:
            if isinstance(item, (str, Path, bytes)):
                if not isinstance(item, bytes):
                    check_image_file(Path(item))  # a missing file, a fifo, a device or a huge file: one reason
                data = item if isinstance(item, bytes) else Path(item).read_bytes()
                image = decode_image(data, label)
            else:
                image = np.ascontiguousarray(item)
                if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                    raise EdgefaceError(f"an image array must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
                data = str(image.shape).encode() + image.tobytes()
            digest = hashlib.sha256(data).hexdigest()
            holder = known.get(digest)
            if holder == result.name:
                result.skipped[label] = f"already enrolled as {holder}"
                continue
            if holder is not None:  # the very photo is somebody else's template: never a silent no-op
                raise EdgefaceError(f"this photo is already enrolled as {holder}: add it to {holder}, or use "
                                    "another photo")
            vec, q, face = face_template(image, finder, embedder, max_turn, gates)
            refusal = None if new_person else lookalike(gallery, result.name, vec, threshold)
            if refusal is not None:
                raise EdgefaceError(refusal)
            kept.append(keep_face(image, face) if store_faces else None)
        except (EdgefaceError, OSError) as exc:
            result.rejected[label] = str(exc) if isinstance(exc, EdgefaceError) else exc.strerror or str(exc)
            continue
        known[digest] = result.name
        rows.append(vec)
        hashes.append(digest)
        quality.append(q)
        result.accepted.append(label)
    if rows:
        result.templates = gallery.add(result.name, np.stack(rows), hashes, quality, kept)
    return result


def person_folders(root: Path) -> dict[str, list[Path]]:
    """``root/<person>/<images>`` -> {person: images}."""
    if not root.is_dir():
        raise EdgefaceError(f"directory not found: {root}")
    people = {p.name: sorted(i for i in p.iterdir() if i.is_file() and is_image(i))
              for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    people = {k: v for k, v in people.items() if v}
    if not people:
        raise EdgefaceError(f"no <person>/<image> folders in {root}")
    for name in people:  # every name checked before anyone is enrolled: no half-done batch
        check_name(name)
    return people


