"""``edgeface data prepare``: every source image -> its main face aligned to 112x112 + one manifest line.

The manifest (``manifest.jsonl``) is appended line by line and flushed, so an interrupted run resumes where
it stopped (sources already listed are skipped). Images with no face or several faces are counted, never
silently dropped; with several, the largest most central face is kept.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from collections import Counter
from pathlib import Path

import numpy as np

from edgeface.data.layouts import Item, list_items
from edgeface.errors import EdgefaceError
from edgeface.evaluate.lfw import parse_pairs
from edgeface.progress import progress_bar
from edgeface.runtime.threads import check_workers
from edgeface.vision.detector_options import (
    BLAZEFACE_ALIGNMENT,
    DEFAULT_DETECT_SIZE,
    DEFAULT_DETECTOR,
    DLIB_CHIP_ALIGNMENT,
)
from edgeface.vision.face import Face

MANIFEST = "manifest.jsonl"
UNLABELED = "_unlabeled"

_finder = None


def _init_worker(detector: str, detect_size: int, alignment: str | None) -> None:
    global _finder
    from edgeface.vision.detect import FaceFinder

    _finder = FaceFinder(detector, threads=1, detect_size=detect_size, alignment=alignment)


def process_item(item: Item, dst: Path, out: Path) -> dict:
    """Detect, pick the main face, align, write the crop; return the manifest record."""
    from edgeface.vision.align import align_face
    from edgeface.vision.detect import main_face
    from edgeface.vision.image import read_image, write_image

    record: dict = {"source": str(item.path), "identity": item.identity}
    try:
        image = read_image(item.path)
    except EdgefaceError as exc:
        return {**record, "status": "unreadable", "error": str(exc)}
    assert _finder is not None
    faces = _finder.find(image)
    record["faces"] = len(faces)
    if not faces:
        return {**record, "status": "no_face"}
    face = main_face(faces, image.shape)
    write_image(dst / out, align_face(image, face, _finder.model_alignment))
    return {**record, "status": "ok", "file": str(out), "detector": _finder.alignment, "score": round(face.score, 4),
            "box": [round(float(v), 2) for v in face.box],
            "landmarks": [[round(float(v), 2) for v in p] for p in face.keypoints]}


def crop_name(source: Path) -> str:
    """``a.jpg`` -> ``a.jpg``, ``a.png`` -> ``a_png.jpg``, ``a.JPG`` -> ``a_JPG.jpg``."""
    return source.name if source.suffix == ".jpg" else f"{source.stem}_{source.suffix.lstrip('.')}.jpg"


def crop_names(items: list[Item], records: list[dict]) -> dict[str, Path]:
    """Each source's crop path (``<identity>/<name>``), never one already taken by another source, in this run or an
    earlier one: ``x.png`` and ``x_png.jpg`` of two people would otherwise share a crop and one face be lost. A name
    taken gets the first 8 hex digits of its source path's sha256."""
    import hashlib

    taken = {str(r.get("file")).lower() for r in records if r.get("file")}  # lower: case-blind file systems too
    out: dict[str, Path] = {}
    for item in items:
        name = Path(item.identity or UNLABELED) / crop_name(item.path)
        if str(name).lower() in taken:
            digest = hashlib.sha256(str(item.path).encode()).hexdigest()[:8]
            name = name.with_name(f"{name.stem}_{digest}.jpg")
        taken.add(str(name).lower())
        out[str(item.path)] = name
    return out


def _work(args: tuple[Item, Path, Path]) -> dict:
    return process_item(*args)


def read_manifest(dst: Path) -> list[dict]:
    """Records of a prepared folder; a line cut by a crash is ignored (it will be redone), a line that is JSON but
    not a record is an error naming it."""
    path = Path(dst) / MANIFEST
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if not isinstance(record, dict):
            raise EdgefaceError(f"{path} line {n} is not a record (a JSON object): the folder is damaged")
        records.append(record)
    return records


def record_file(record: dict, root: Path, where: str) -> Path:
    """Where a record's ``file`` lives: a relative path inside ``root``. A manifest is data from disk, so an absolute
    path or one that climbs out with ``..`` is refused before anything is read or written through it."""
    file = record.get("file")
    if not isinstance(file, str) or not file or Path(file).is_absolute() or ".." in Path(file).parts:
        raise EdgefaceError(f"{where}: 'file' must be a relative path inside the folder, got {str(file)[:80]!r}")
    return root / file


def record_face(record: dict, where: str = "manifest record") -> Face:
    """The detection stored in a manifest record, checked: a box of 4 numbers, 4 to 6 landmarks."""
    try:
        box = np.asarray(record["box"], np.float32)
        points = np.asarray(record["landmarks"], np.float32)  # 5 (YuNet) or 6 (BlazeFace) points
    except KeyError as exc:
        raise EdgefaceError(f"{where} of {str(record.get('source'))[:80]} has no {exc}: re-run edgeface data "
                            "prepare") from None
    except (TypeError, ValueError):
        raise EdgefaceError(f"{where}: 'box' and 'landmarks' must be lists of numbers") from None
    if box.shape != (4,) or points.ndim != 2 or points.shape[1] != 2 or not 4 <= len(points) <= 6 \
            or not (np.isfinite(box).all() and np.isfinite(points).all()):
        raise EdgefaceError(f"{where}: 'box' must be 4 numbers and 'landmarks' 4 to 6 (x, y) points")
    return Face(box, float(record.get("score", 1.0)), points)


def check_same_alignment(records: list[dict], alignment: str, dst: Path) -> None:
    """Crops aligned from different detectors' landmarks must not share one training folder."""
    # records from before the detector was recorded were all aligned from BlazeFace keypoints
    earlier = {r.get("detector", BLAZEFACE_ALIGNMENT) for r in records if r.get("status") == "ok"}
    if earlier and earlier != {alignment}:
        raise EdgefaceError(f"{dst} holds faces aligned by {', '.join(sorted(earlier))}, not {alignment}: "
                            "prepare into a new folder or pass the --detector it was made with")


def prepare(src: str | Path, dst: str | Path, identities: Path | None = None, layout: str = "auto",
            exclude_pairs: Path | None = None, prefix: str = "", workers: int = 2, limit: int = 0,
            detector: str = DEFAULT_DETECTOR, detect_size: int = DEFAULT_DETECT_SIZE,
            alignment: str | None = None) -> dict:
    """Prepare a dataset; returns counts: ok, no_face, unreadable, several_faces (main face kept),
    skipped_already_prepared, excluded_people. ``alignment`` ``yunet-dlib150`` cuts dlib's 150x150 chip (for
    ``--arch dlib-resnet``) instead of the ArcFace 112x112 crop."""
    global _finder
    from edgeface.vision.detect import FaceFinder

    src, dst = Path(src), Path(dst)
    check_workers(workers)
    if limit < 0:
        raise EdgefaceError(f"--limit must be 0 (all) or more, got {limit}")
    if prefix:
        from edgeface.data.layouts import check_identity

        check_identity(prefix)
    if alignment is not None and alignment != DLIB_CHIP_ALIGNMENT:
        raise EdgefaceError(f"--alignment must be {DLIB_CHIP_ALIGNMENT} (or left out: the detector's own), got "
                            f"{alignment!r}")
    # checks the settings before any work
    finder = FaceFinder(detector, threads=1, detect_size=detect_size, alignment=alignment)
    recorded = finder.alignment
    exclude: set[str] = set()
    if exclude_pairs is not None:
        pairs = parse_pairs(exclude_pairs)
        exclude = {name.split("/")[0] for name in pairs.images}
    items = list_items(src, layout, identities, prefix, exclude)
    if limit:
        items = items[:limit]
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgefaceError(f"cannot create {dst}: {exc.strerror}") from None
    records = read_manifest(dst)
    check_same_alignment(records, recorded, dst)
    done = {r["source"] for r in records}
    todo = [it for it in items if str(it.path) not in done]
    names = crop_names(todo, records)
    # the same keys on every run, zero or not, so --json consumers need no guessing
    counts: Counter = Counter({key: 0 for key in ("ok", "no_face", "unreadable", "several_faces")})
    with open(dst / MANIFEST, "a", encoding="utf-8") as manifest, progress_bar() as bar:
        task = bar.add_task(f"aligning {src.name}", total=len(todo))

        def record(rec: dict) -> None:
            manifest.write(json.dumps(rec) + "\n")
            manifest.flush()
            counts[rec["status"]] += 1
            if rec.get("faces", 0) > 1:
                counts["several_faces"] += 1  # the main face was kept
            bar.advance(task)

        if workers == 1 or len(todo) < 8:
            _finder = finder  # in this process: the finder made above does the work
            for it in todo:
                record(process_item(it, dst, names[str(it.path)]))
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(detector, detect_size, alignment)) as pool:
                for rec in pool.imap(_work, [(it, dst, names[str(it.path)]) for it in todo], chunksize=16):
                    record(rec)
        os.fsync(manifest.fileno())
    return {"dst": str(dst), "detector": recorded, "sources": len(items), **{k: int(v) for k, v in counts.items()},
            "skipped_already_prepared": len(items) - len(todo), "excluded_people": len(exclude)}
