"""Images on disk -> one aligned face / one embedding each, with caches that make re-runs fast.

Detections are cached per (detector settings, image), the image keyed by path, size and mtime, so a second model
skips detection; embeddings are cached per (embedder key, detector settings, image) so re-scoring the same model
takes seconds, and nothing found or aligned by one detector is ever reused for another. Caches live in
``~/.cache/edgeface`` (or $EDGEFACE_CACHE), never beside the data, and are plain ``.npz`` without pickle.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.files import atomic_write, cache_dir
from edgeface.progress import progress_bar
from edgeface.runtime.threads import check_workers
from edgeface.vision.align import align_face, centre_face
from edgeface.vision.detect import FaceFinder, main_face
from edgeface.vision.detector_options import DEFAULT_DETECT_SIZE, DEFAULT_DETECTOR
from edgeface.vision.embed import AlignedEmbedder, Embedder, flip_average, flips_templates, l2_normalise
from edgeface.vision.face import Face
from edgeface.vision.image import read_image

MAX_KEYPOINTS = 6


def file_signature(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


class KeyedArrayCache:
    """An ``.npz`` of rows keyed by string: load once, add rows, save atomically. No pickle.

    With ``path=None`` it lives in memory only.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rows: dict[str, np.ndarray] = {}
        if path is not None and path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    self.rows = dict(zip(data["keys"].tolist(), data["values"], strict=True))
            except (OSError, ValueError, KeyError):
                self.rows = {}  # a damaged cache is only a cache: rebuild it
        self.dirty = False

    def get(self, key: str) -> np.ndarray | None:
        return self.rows.get(key)

    def put(self, key: str, value: np.ndarray) -> None:
        self.rows[key] = value
        self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty or not self.rows:
            return
        keys = np.array(list(self.rows))
        values = np.stack(list(self.rows.values()))
        with atomic_write(self.path) as handle:
            np.savez(handle, keys=keys, values=values)
        self.dirty = False


def cache_file(kind: str, name: str) -> Path:
    return cache_dir(kind) / f"{hashlib.sha256(name.encode()).hexdigest()[:24]}.npz"


def face_to_row(face: Face) -> np.ndarray:
    """box (4), score, fallback, keypoint count, keypoints padded to MAX_KEYPOINTS x 2: one fixed-length row."""
    points = np.zeros((MAX_KEYPOINTS, 2), np.float32)
    points[: len(face.keypoints)] = face.keypoints
    return np.concatenate([face.box, [face.score, float(face.fallback), len(face.keypoints)],
                           points.reshape(-1)]).astype(np.float32)


def row_to_face(row: np.ndarray) -> Face:
    count = int(row[6])
    return Face(row[:4].copy(), float(row[4]), row[7:].reshape(MAX_KEYPOINTS, 2)[:count].copy(),
                fallback=bool(row[5] > 0.5))


def embed_paths(paths: Sequence[Path], embedder: Embedder, workers: int = 2, detector_threads: int = 1,
                group: str = "images", description: str = "embedding", detector: str = DEFAULT_DETECTOR,
                detect_size: int = DEFAULT_DETECT_SIZE,
                transform: Callable[[np.ndarray, str], np.ndarray] | None = None,
                with_measures: bool = False) -> tuple:
    """Embed the main face of every image; where detection fails, a centre crop is used and flagged.

    ``transform(image, path)`` alters each image after reading (an evaluation condition); ``group`` must then
    name it, since caches are keyed by the file. Returns (embeddings (N, D), fell_back per image), and with
    ``with_measures`` the light and sharpness of each face's chip too (``vision.quality.face_measures``, (N, 3),
    cached per alignment: the quality gates are judged on them). Unreadable images raise with the file's name.
    """
    from edgeface.vision.quality import MEASURES, face_measures

    paths = [Path(p) for p in paths]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise EdgefaceError(f"image not found: {missing[0]} ({len(missing)} missing)")
    signatures = [file_signature(p) for p in paths]
    alignment = getattr(embedder, "alignment", None)
    finder = FaceFinder(detector, detector_threads, detect_size, alignment=alignment)  # fails early on bad settings
    spare = [finder]
    detections = KeyedArrayCache(cache_file("detections", f"{finder.id}|{group}"))
    # an embedder without a stable identity (a model mid-training) keeps its embeddings in memory only
    embeddings = KeyedArrayCache(
        cache_file("embeddings", f"{embedder.key}|{finder.id}|{group}") if embedder.key else None)
    measured = KeyedArrayCache(  # keyed by what is measured: a new measure is never read from an older cache
        cache_file("measures", f"{','.join(MEASURES)}|{alignment}|{finder.id}|{group}") if with_measures else None)
    out: list[np.ndarray | None] = [embeddings.get(s) for s in signatures]
    measures: list[np.ndarray | None] = [measured.get(s) for s in signatures]
    fell_back = [False] * len(paths)
    for i, s in enumerate(signatures):
        row = detections.get(s)
        if row is not None:
            fell_back[i] = bool(row[5] > 0.5)
    todo = [i for i in range(len(paths)) if out[i] is None or (with_measures and measures[i] is None)]
    local = threading.local()
    batched = isinstance(embedder, AlignedEmbedder)  # our crops: align in the workers, embed 64 at a time

    def load(i: int) -> tuple[int, np.ndarray, Face, np.ndarray | None]:
        image = read_image(paths[i])
        if transform is not None:
            image = transform(image, str(paths[i]))
        row = detections.get(signatures[i])
        if row is not None:
            face = row_to_face(row)
        else:
            if not hasattr(local, "finder"):  # the first worker takes the finder made up front
                local.finder = spare.pop() if spare else FaceFinder(detector, detector_threads, detect_size,
                                                                     alignment=alignment)
            faces = local.finder.find(image)
            face = main_face(faces, image.shape) if faces else centre_face(image)
        chip = align_face(image, face, alignment) if batched or with_measures else None
        return i, (chip if batched else image), face, face_measures(chip, image, face) if with_measures else None

    try:
        with progress_bar() as bar, ThreadPoolExecutor(max_workers=check_workers(workers)) as pool:
            task = bar.add_task(description, total=len(todo))
            for start in range(0, len(todo), 64):
                chunk = list(pool.map(load, todo[start : start + 64]))
                for i, _, face, measure in chunk:
                    detections.put(signatures[i], face_to_row(face))
                    fell_back[i] = face.fallback
                    if measure is not None:
                        measured.put(signatures[i], measure)
                        measures[i] = measure
                fresh = [item for item in chunk if out[item[0]] is None]
                if fresh and batched:
                    vectors = embedder.embed(np.stack([crop for _, crop, _, _ in fresh]))
                elif fresh:
                    vectors = np.stack([embedder.embed_faces(image, [face])[0] for _, image, face, _ in fresh])
                for (i, _, _, _), vec in zip(fresh, vectors if fresh else [], strict=True):
                    embeddings.put(signatures[i], vec)
                    out[i] = vec
                bar.advance(task, len(chunk))
    finally:
        detections.save()
        embeddings.save()
        measured.save()
    result = np.stack(out).astype(np.float32)
    return (result, fell_back, np.stack(measures).astype(np.float32)) if with_measures else (result, fell_back)



@dataclass
class Sides:
    """A set of images embedded as ``recognize`` compares them: ``probes`` as every camera frame is (one pass), and
    ``templates`` as enrolment makes them (flip-averaged where the model's manifest says ``templates: flip``; None
    where they are the probes), both unit vectors; each image's fallback flag and, when asked, its measures."""

    probes: np.ndarray
    templates: np.ndarray | None
    fell_back: list[bool]
    measures: np.ndarray | None = None


def embed_sides(paths: Sequence[Path], embedder: Embedder, description: str = "embedding",
                with_measures: bool = False, **options: Any) -> Sides:
    """``embed_paths`` for every evaluation that places or judges a threshold: the probes, and where the model's
    templates are flip-averaged, those too. A template is its probe averaged with the mirror image's embedding
    (``flip_average``), so only the mirror pass runs again (cached apart), never the probe's twice."""
    done = embed_paths(paths, embedder, description=description, with_measures=with_measures, **options)
    templates = None
    if flips_templates(embedder):
        mirrored = embed_paths(paths, embedder.twin(mirror=True), description=f"{description}, mirror images",
                               **options)[0]
        templates = flip_average(done[0], mirrored)
    return Sides(l2_normalise(done[0]), templates, done[1], done[2] if with_measures else None)
