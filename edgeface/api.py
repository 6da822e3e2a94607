"""The public Python API: find, embed, compare and identify faces in a few lines, on the device half only.

    import edgeface
    fr = edgeface.load()                                  # the shipped model, YuNet detection
    fr.verify("a.jpg", "b.jpg")                           # {'same': True, 'score': 0.97, 'threshold': 0.93, ...}
    people = edgeface.Gallery("people.sqlite")
    people.enroll("obama", "obama.jpg")
    people.identify("two_people.jpg")                     # photos: [{'name': 'obama', 'score': 0.97, ...}, ...]
    for frame, faces in people.watch("door.mp4"):         # video and cameras: tracked and confirmed
        ...

Images are file paths or numpy arrays. Arrays are RGB uint8 (H, W, 3) like face_recognition's; pass ``bgr=True`` for
frames straight from OpenCV. Every problem is an :class:`edgeface.errors.EdgefaceError` naming it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.recognize.config import PipelineConfig
from edgeface.recognize.pipeline import Image, Pipeline, check_boxes, detect_files, photo_items, similarity
from edgeface.recognize.results import FaceRecord
from edgeface.vision.detector_options import DEFAULT_DETECT_SIZE, DEFAULT_DETECTOR
from edgeface.vision.image import as_rgb


def one_line_errors(kind: type, error: BaseException, traceback: Any, previous: Any = sys.excepthook) -> None:
    """A script that lets an EdgefaceError escape ends as the CLI does: one line naming the problem, exit 1, no
    traceback (EDGEFACE_DEBUG=1 shows it). Every other exception keeps Python's own report."""
    if issubclass(kind, EdgefaceError) and not os.environ.get("EDGEFACE_DEBUG"):
        print(f"edgeface: error: {error}", file=sys.stderr)
        return
    previous(kind, error, traceback)


if sys.excepthook is sys.__excepthook__:  # a hook someone else installed stays theirs
    sys.excepthook = one_line_errors

DetectedFace = FaceRecord  # what ``detect`` returns: the one face record, before matching


class FaceRecognizer(Pipeline):
    """A model and a detector, loaded once: the pipeline with keyword settings. Use :func:`edgeface.load`."""

    def __init__(self, model: str | Path | None = None, **options: Any) -> None:
        super().__init__(PipelineConfig.of(model=model, **options))

    @property
    def given_threshold(self) -> float | None:
        return self.config.threshold


def load(model: str | Path | None = None, **options: Any) -> FaceRecognizer:
    """A ready recogniser: the shipped model unless ``model`` names one (a .tflite, a shipped name such as "fast",
    or "dlib"); ``options`` are ``PipelineConfig``'s (detector, detect_size, threshold, threads, min_face,
    input_mean, input_scale, channels, smooth, confirm, max_turn, detect_every), checked here, at load."""
    recognizer = FaceRecognizer(model, **options)
    if recognizer.config.threshold is None and recognizer.embedder.threshold is not None:
        recognizer.threshold  # noqa: B018 (a stored threshold out of range is refused now, not at first use)
    return recognizer


def detect_faces(target: str | Path, detector: str = DEFAULT_DETECTOR, detect_size: int = DEFAULT_DETECT_SIZE) -> dict:
    """Every face in an image or a folder of images (``edgeface detect``), no model needed."""
    return detect_files(Pipeline(PipelineConfig(detector=detector, detect_size=detect_size), load_model=False),
                        target)


class Gallery:
    """Enrolled people in a SQLite file, bound to one model: ``Gallery(path)``, then enroll / identify / watch."""

    def __init__(self, path: str | Path | None = None, recognizer: Pipeline | None = None,
                 model: str | Path | None = None, create: bool = True, read_only: bool = False,
                 **options: Any) -> None:
        """Without ``model`` (or ``recognizer``), the model the gallery file remembers, else the shipped one.
        ``create=False``: a missing file is an error; ``read_only``: opened for matching only (a camera loop
        beside an enrolling process). ``options`` go to :func:`load`."""
        if path is not None and not isinstance(path, (str, Path)):
            raise EdgefaceError(f"a gallery is a file path, got {type(path).__name__}")
        self.recognizer = recognizer or Pipeline.for_gallery(path, PipelineConfig.of(model=model, **options))
        self.store = self.recognizer.open_gallery(path, create=create, read_only=read_only)
        self.path = self.store.path
        self._frames: Any = None

    def enroll(self, name: str, *images: Image | list[Image], bgr: bool = False,
               store_faces: bool = True, new_person: bool = False) -> dict[str, Any]:
        """Add photos of one person: paths, folders of photos, arrays (``bgr=True`` for OpenCV frames), or lists
        of them. Each is quality-checked like ``edgeface enroll``, and its face kept (a small crop) for
        ``edgeface gallery upgrade`` unless ``store_faces=False``. A face that already matches someone else is
        refused with their name unless ``new_person=True``.

        Returns {"name", "accepted", "rejected": {photo: reason}, "skipped", "templates"}; raises EdgefaceError
        naming each photo and its reason when none was enrolled (nor already was)."""
        items = photo_items(images, bgr)
        if not items:
            raise EdgefaceError(f"no photo given for {name!r}")
        return self.recognizer.enroll_people(self.store, {name: items}, store_faces, new_person)[0].to_dict()

    def enroll_folder(self, root: str | Path, store_faces: bool = True,
                      new_person: bool = False) -> dict[str, dict[str, Any]]:
        """``root/<person>/<photos>``: every person at once (as ``edgeface enroll --dir``); results by name. A
        person none of whose photos passed is in the results with the reasons; raises only when nobody was."""
        from edgeface.recognize.enroll import person_folders

        results = self.recognizer.enroll_people(self.store, person_folders(Path(root)), store_faces, new_person)
        return {r.name: r.to_dict() for r in results}

    def identify(self, image: Image, bgr: bool = False) -> list[dict[str, Any]]:
        """Every face in one **photo**, as ``edgeface recognize --json`` reports a photo: ``name`` the enrolled
        person it matches or None, the best ``candidate`` and its ``score``, box, landmarks, detection score and
        head turn; a face too small or turned away is not compared and says so in ``reason``. For video, use
        :meth:`watch`: a single frame is not evidence enough to name anyone."""
        if self._frames is None:
            self._frames = self.recognizer.frames(self.store)
        return [face.to_dict() for face in self.recognizer.identify(self._frames, image, bgr)]

    def watch(self, source: str | int | Path | Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, list[dict]]]:
        """Recognise a video, a camera or a stream as ``edgeface recognize`` does: faces tracked across frames and
        named once they matched the same person in ``confirm`` frames in a row (the loop a face_recognition user
        writes by hand names strangers in single frames). ``source``: a camera index, a video file, an rtsp:// or
        http:// URL, or any iterable of BGR frames (OpenCV's order). Yields ``(frame, faces)``: the BGR frame and
        its faces as :meth:`identify` gives them."""
        recognizer = self.recognizer.frames(self.store)  # its own tracks: one watch never confuses another
        for frame, faces in self.recognizer.watch(recognizer, source):
            yield frame, [face.to_dict() for face in faces]

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


__all__ = ["DetectedFace", "FaceRecognizer", "Gallery", "as_rgb", "check_boxes", "detect_faces", "load",
           "similarity"]
