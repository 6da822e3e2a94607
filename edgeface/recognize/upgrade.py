"""``edgeface gallery upgrade``: move a gallery to another model without asking anyone to enrol again.

Templates of two models cannot be compared, so a new model used to mean a new gallery. Each template now keeps the
face it was made from (``enroll.keep_face``): a JPEG crop with margin and the detection in its coordinates. The
upgrade aligns that face for the new model (from the stored landmarks, or detected again when the new model wants
another detector's landmarks), embeds it and swaps every template and the gallery's model in one transaction.
"""

from __future__ import annotations

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.progress import progress_bar
from edgeface.recognize.gallery import Gallery, StoredFace
from edgeface.vision.chip import chip_for
from edgeface.vision.detect import FaceFinder
from edgeface.vision.embed import Embedder, embedder_identity, template_embedder
from edgeface.vision.face import SAME_FACE_IOU, Face, iou
from edgeface.vision.image import decode_image


def stored_face_in(image: np.ndarray, stored: StoredFace, finder: FaceFinder) -> tuple[Face | None, bool]:
    """The enrolled face on its crop and whether its landmarks had to be found again; None when the crop holds no
    face where the stored box says (a damaged or replaced crop: embedding it would make that person unknown).

    The face is always detected again to prove it is there. The stored landmarks were found on the full photo, so
    they are the better ones whenever they are the kind the new model aligns from (YuNet's 5 points, or BlazeFace's
    6); otherwise the detection that overlaps the stored box most gives them."""
    box = np.array(stored.box, np.float32)
    points = np.array(stored.landmarks, np.float32)
    found = [(float(iou(box, f.box[None])[0]), f) for f in finder.find(image)]
    overlap, best = max(found, key=lambda pair: pair[0], default=(0.0, None))
    if best is None or overlap < SAME_FACE_IOU:
        return None, False
    if chip_for(finder.alignment).takes(points):
        return Face(box, 1.0, points), False
    return best, True


def missing_faces_message(store: Gallery, missing: list[str]) -> str:
    people = sorted(set(missing))
    shown = ", ".join(people[:5]) + (f" and {len(people) - 5} more" if len(people) > 5 else "")
    return (f"gallery {store.path}: {len(missing)} template(s) of {shown} keep no face (enrolled before edgeface "
            "kept faces, with --no-store-faces, or imported): enrol those people's photos again into a new --gallery "
            "with this model")


def upgrade_gallery(store: Gallery, finder: FaceFinder, embedder: Embedder, model: str | None = None) -> dict:
    """Re-embed every template of ``store`` with ``embedder`` (faces aligned the way ``finder``, made for that model,
    aligns them) and bind the gallery to it (remembered as ``model``, a ``model_ref``), all or nothing; returns what
    was done. Refuses, naming the people, when a template keeps no face."""
    model_id, alignment = embedder_identity(embedder), finder.alignment
    embedder = template_embedder(embedder)  # templates as enrolment makes them (flip-averaged for the default)
    rows = store.stored_faces()
    missing = [name for _, name, face in rows if face is None]
    if missing:
        raise EdgefaceError(missing_faces_message(store, missing))
    before = store.meta("model_sha256")
    if before == model_id and store.embedding_size == embedder.size and store.alignment == alignment:
        return {"gallery": str(store.path), "model_before": before, "model_after": model_id, "templates": 0,
                "people": len(store.people()), "found_again": 0, "upgraded": False}
    embeddings: dict[int, np.ndarray] = {}
    found_again, faceless = 0, []
    with progress_bar() as bar:
        task = bar.add_task("re-embedding enrolled faces", total=len(rows))
        for template_id, name, stored in rows:
            assert stored is not None
            image = decode_image(stored.jpeg, f"the stored face of {name}")
            face, again = stored_face_in(image, stored, finder)
            bar.advance(task)
            if face is None:
                faceless.append(name)
                continue
            found_again += again
            embeddings[template_id] = embedder.embed_faces(image, [face])[0]
    if faceless:
        people = sorted(set(faceless))
        raise EdgefaceError(f"gallery {store.path} was left as it was: {len(faceless)} kept face(s) of "
                            f"{', '.join(people)} hold no face any more; remove those people (edgeface gallery "
                            "remove NAME) and enrol them again")
    store.rebind(model_id, embedder.size, alignment, embeddings, model)
    return {"gallery": str(store.path), "model_before": before, "model_after": model_id, "templates": len(rows),
            "people": len({name for _, name, _ in rows}), "found_again": found_again, "upgraded": True}
