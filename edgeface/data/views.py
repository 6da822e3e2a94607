"""``edgeface data views``: harder copies of a prepared folder, for a teacher to label and a student to learn from.

Each view applies one to three conditions (``edgeface.vision.conditions.random_view``: grey, shading, hard
shadow, blur, small-face detail, JPEG, occlusion, colour; or, ``--kind harsh``, one of ``random_harsh``'s hard cast
shadow, dim room at the gain limit and night camera) to the *source photo*, then aligns it with the landmarks
found on the clean photo. Why the source and not the crop: a teacher with its own alignment (dlib) must see the
damaged photo, and the student's crop then holds exactly the pixels the teacher was shown.

The output is a prepared folder like any other (crops + ``manifest.jsonl``, the damaged photo as each record's
source), so ``distill`` and the teacher cache take it unchanged. Each record names the clean face it was made from
(``of`` in the folder ``of_root``), so ``distill --clean-targets`` can teach a view the teacher's embedding of the clean
face. Resumable; every view is seeded by its name.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

from edgeface.choices import VIEW_KINDS
from edgeface.data.prepare import MANIFEST, read_manifest, record_face, record_file
from edgeface.errors import EdgefaceError
from edgeface.progress import progress_bar
from edgeface.runtime.threads import check_workers

SOURCES = "sources"


def view_name(file: str, k: int) -> str:
    path = Path(file)
    return str(path.with_name(f"{path.stem}_v{k}{path.suffix}"))


def make_view(task: tuple[dict, int, Path, int, str, str]) -> dict:
    """Damage one record's source photo, align it, write both; return the view's manifest record."""
    from edgeface.vision.align import align_face
    from edgeface.vision.conditions import random_harsh, random_view, rng_for
    from edgeface.vision.image import read_image, write_image

    record, k, dst, seed, kind, of_root = task
    name = view_name(record["file"], k)
    face = record_face(record)  # checked with the whole folder before the pool started
    photo, rng = read_image(record["source"]), rng_for(name, f"view{seed}" if kind == "camera" else f"{kind}{seed}")
    image, steps = (random_view(photo, face.box, face.keypoints, rng) if kind == "camera"
                    else random_harsh(photo, face.box, rng))
    source = dst / SOURCES / name
    write_image(source, image)
    write_image(dst / name, align_face(image, face, record.get("detector")))  # on the chip of the clean crop
    return {**record, "source": str(source), "file": name, "of": record["file"], "of_root": of_root, "view": steps}


def make_views(src: str | Path, dst: str | Path, per_face: int = 1, seed: int = 0, workers: int = 2,
               kind: str = "camera") -> dict:
    """``per_face`` damaged views of every ok face in the prepared folder ``src``, written as the prepared folder
    ``dst``; returns counts and how often each condition was drawn. ``kind``: ``camera`` (everyday damage,
    ``random_view``) or ``harsh`` (``random_harsh``: the light a door camera meets at night and at noon)."""
    src, dst = Path(src), Path(dst)
    if per_face < 1:
        raise EdgefaceError("--per-face must be at least 1")
    check_workers(workers)
    if kind not in VIEW_KINDS:
        raise EdgefaceError(f"unknown view kind {kind!r}; choose one of {', '.join(VIEW_KINDS)}")
    if src.resolve() == dst.resolve():
        raise EdgefaceError("views must go to a new folder, not into the prepared folder they come from")
    records = [r for r in read_manifest(src) if r.get("status") == "ok"]
    if not records:
        raise EdgefaceError(f"no prepared faces in {src}: run 'edgeface data prepare' first")
    for n, record in enumerate(records, 1):  # the folder is data: every record checked before anything is written
        where = f"{src / MANIFEST} ok record {n}"
        record_file(record, dst, where)
        record_face(record, where)
        if not isinstance(record.get("source"), str):
            raise EdgefaceError(f"{where}: 'source' must be a path")
    dst.mkdir(parents=True, exist_ok=True)
    done = {r["file"] for r in read_manifest(dst)}
    of_root = str(src.resolve())
    todo = [(r, k, dst, seed, kind, of_root) for r in records for k in range(per_face)
            if view_name(r["file"], k) not in done]
    drawn: dict[str, int] = {}
    with open(dst / MANIFEST, "a", encoding="utf-8") as manifest, progress_bar() as bar:
        task = bar.add_task(f"views of {src.name}", total=len(todo))
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers) as pool:
            for rec in pool.imap(make_view, todo, chunksize=16):
                manifest.write(json.dumps(rec) + "\n")
                manifest.flush()
                for step in rec["view"]:
                    drawn[step] = drawn.get(step, 0) + 1
                bar.advance(task)
        os.fsync(manifest.fileno())
    return {"dst": str(dst), "kind": kind, "faces": len(records), "per_face": per_face, "written": len(todo),
            "skipped_already_made": len(records) * per_face - len(todo),
            "conditions_drawn": dict(sorted(drawn.items(), key=lambda kv: -kv[1]))}
