"""Teacher embeddings of a prepared dataset, computed once and cached: the targets of distillation.

The teacher sees the original source image and the stored detection, so a teacher with its own
alignment (dlib) works as well as one on our aligned crops. Rows are cached per (teacher key, source file):
an interrupted run resumes, and a second student reuses the targets.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np

from edgeface.data.prepare import read_manifest, record_face
from edgeface.errors import EdgefaceError
from edgeface.progress import progress_bar
from edgeface.runtime.threads import check_workers
from edgeface.vision.embedding_cache import KeyedArrayCache, cache_file
from edgeface.vision.image import read_image

_teacher = None


def _init(teacher: str, threads: int, flip: bool) -> None:
    global _teacher
    from edgeface.training.train.keras_embedder import load_any_embedder

    _teacher = load_any_embedder(teacher, threads=threads, flip=flip)


def _targets(record: dict) -> tuple[str, np.ndarray]:
    assert _teacher is not None
    image = read_image(record["source"])
    face = record_face(record)
    return record["file"], _teacher.embed_faces(image, [face])[0]


def teacher_targets(roots: list[Path], teacher: str, workers: int = 2, flip: bool = False) -> dict[str, np.ndarray]:
    """{"<root>/<file>": (D,) target} for every ok face of the prepared folders ``roots`` (``flip``: the mean of the
    face's and its mirror's embedding)."""
    from edgeface.training.train.keras_embedder import load_any_embedder

    check_workers(workers)
    key = load_any_embedder(teacher, flip=flip).key
    out: dict[str, np.ndarray] = {}
    for root in roots:
        records = [r for r in read_manifest(root) if r.get("status") == "ok"]
        if not records:
            raise EdgefaceError(f"no prepared faces in {root} (run edgeface data prepare first)")
        cache = KeyedArrayCache(cache_file("targets", f"{key}|{Path(root).resolve()}"))
        todo = [r for r in records if cache.get(r["file"]) is None]
        if todo:
            ctx = mp.get_context("spawn")
            with progress_bar() as bar, ctx.Pool(workers, initializer=_init, initargs=(teacher, 1, flip)) as pool:
                task = bar.add_task(f"teacher {teacher} on {Path(root).name}", total=len(todo))
                for n, (name, vec) in enumerate(pool.imap(_targets, todo, chunksize=8), 1):
                    cache.put(name, vec)
                    bar.advance(task)
                    if n % 500 == 0:
                        cache.save()
            cache.save()
        for r in records:
            out[str(Path(root) / r["file"])] = cache.get(r["file"])
    return out
