"""The enrolment gallery: people and their face templates in SQLite (WAL, transactions, schema version).

Templates are biometric data: the file is created with mode 0600, nothing is pickled, and a gallery is bound to
the model (sha256 + embedding size) that made its templates: opening it with another model is refused, since
embeddings of different models cannot be compared. It also records the alignment its templates were made with
(``yunet-5pt`` or ``blazeface-4pt``, from the detector's landmarks): a face aligned from other landmarks sits a few
pixels off and scores lower, so recognising with another detector is refused with the way out.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import sqlite3
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from edgeface.default_model import DLIB_PORT, canonical_name, is_named_model, shipped_identity, shipped_name_of
from edgeface.errors import EdgefaceError, NotFound
from edgeface.files import atomic_write, data_dir
from edgeface.recognize.match import Match, Templates
from edgeface.vision.detector_options import ALIGNMENTS, BLAZEFACE_ALIGNMENT

if TYPE_CHECKING:
    from edgeface.vision.embed import Embedder

T = TypeVar("T")

# 2: each template may keep the face it was made from (a JPEG crop with margin + its box and landmarks), so
# `gallery upgrade` can re-embed it with another model
SCHEMA_VERSION = 2
LEGACY_ALIGNMENT = BLAZEFACE_ALIGNMENT  # galleries enrolled before the alignment was recorded used BlazeFace
NAME_MAX = 100
RESERVED_NAMES = {"unknown"}  # results and events name an unmatched face so: a person called so would vanish
NAME_RULE = re.compile(r"^[^\W_][\w .'\-]*$", re.UNICODE)
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL, image_sha256 TEXT, quality REAL, created REAL NOT NULL,
    face BLOB, face_points TEXT);
CREATE INDEX IF NOT EXISTS templates_person ON templates(person_id);
"""


def default_gallery() -> Path:
    return data_dir() / "gallery.sqlite"


def model_ref(model: str | Path | None) -> str:
    """How a gallery remembers the model it was enrolled with: a shipped model by its name (``default``,
    ``small``), ``dlib``, or a model file by its absolute path."""
    if model is None:
        return "default"
    text = str(model)
    if is_named_model(text):
        return canonical_name(text)
    if text in ("dlib", DLIB_PORT):
        return text
    return str(Path(text).resolve())


def gallery_model(path: str | Path | None) -> str | None:
    """The model a gallery file remembers (see ``model_ref``), read without opening it for writing; None for a new
    or unreadable gallery, or one enrolled before galleries remembered their model (the real open reports faults)."""
    path = Path(path) if path else default_gallery()
    if not path.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as db:
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('model', 'model_sha256')").fetchall())
    except sqlite3.Error:
        return None
    model, identity = meta.get("model"), meta.get("model_sha256")
    if model and identity and is_named_model(model) and shipped_identity(model) != identity:
        return shipped_name_of(identity) or model  # the model it was enrolled with, under its name now
    return model


def check_name(name: str) -> str:
    """Person names: 1-100 characters, letters/digits first, then letters, digits, space . ' - _ only."""
    if not isinstance(name, str):
        raise EdgefaceError(f"a person's name must be text, got {type(name).__name__}")
    name = name.strip()
    if not name:
        raise EdgefaceError("person name is empty")
    if len(name) > NAME_MAX:
        raise EdgefaceError(f"person name is {len(name)} characters long; the limit is {NAME_MAX}")
    if name.casefold() in RESERVED_NAMES:
        raise EdgefaceError(f"{name!r} is reserved: it is how edgeface reports a face that matches nobody enrolled")
    if not NAME_RULE.match(name):
        bad = next((c for c in name if not (c.isalnum() or c in " .'-_")), name[0])
        raise EdgefaceError(f"person name {name[:40]!r} has a character not allowed ({bad!r}): use letters, "
                            "digits, space, . ' - _ and start with a letter or digit")
    return name


def slug(text: str) -> str:
    """A name as an MQTT topic level and a Home Assistant id: ``"Joe B."`` -> ``joe_b``. Two people of one gallery
    never share one (``Gallery.check_distinct``): they would share one presence sensor, each overwriting the other."""
    return re.sub(r"[^a-z0-9]+", "_", text.casefold()).strip("_") or "_"


UNIT_NORM_TOLERANCE = 1e-3  # templates are L2-normalised float32: anything further from 1 was not made by edgeface
MAX_IMPORT_TEMPLATES = 2_000_000
MAX_IMPORT_BYTES = 1 << 30


def damaged(path: Path, what: str) -> EdgefaceError:
    return EdgefaceError(f"gallery {path} is damaged ({what}): save what can be read with 'edgeface gallery export', "
                         f"and check it with: sqlite3 {path} 'PRAGMA integrity_check'")


def disk_full(path: Path) -> bool:
    """Is the disk holding ``path`` full? (SQLite reports a failed -shm file as a plain "disk I/O error".)"""
    try:
        return shutil.disk_usage(path.resolve().parent).free < 64 * 1024
    except OSError:
        return False


def database_error(path: Path, exc: sqlite3.DatabaseError, what: str = "") -> EdgefaceError:
    """What SQLite's error means for the user: a full disk and a read-only file are not damage (the gallery is
    intact, the transaction rolled back); anything else is (``what`` says how far opening it got)."""
    text = str(exc).lower()
    if "disk is full" in text or ("disk i/o error" in text and disk_full(path)):
        return EdgefaceError(f"the disk holding gallery {path} is full: nothing was changed; free some space and "
                             "run the command again")
    if "readonly" in text or "read-only" in text:
        return EdgefaceError(f"gallery {path} is read-only (file or folder permissions, or a read-only disk): "
                             "nothing was changed")
    if "unable to open" in text:
        return EdgefaceError(f"cannot open gallery {path}: {exc}")
    return damaged(path, f"{what}{exc}")


def guarded(method: Callable[..., T]) -> Callable[..., T]:
    """A damaged file (bad page, wrong types in meta, short template blob) becomes one line naming the gallery."""

    @functools.wraps(method)
    def wrapper(self: Gallery, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise database_error(self.path, exc) from None
        except (ValueError, TypeError) as exc:
            raise damaged(self.path, str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__) from None

    return wrapper


def check_templates(embeddings: np.ndarray, dim: int, source: str) -> np.ndarray:
    """Refuse templates a gallery must never hold: wrong size, NaN/inf, or not unit length (norm 1000 templates
    would outscore every honest match; a NaN one would make everyone unknown and break --json)."""
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or embeddings.shape[1] < 2 or (dim and embeddings.shape[1] != dim):
        raise EdgefaceError(f"{source}: templates must be (N, {dim or 'D'}) vectors, got {embeddings.shape}")
    if embeddings.dtype.kind != "f":
        raise EdgefaceError(f"{source}: templates must be floating point, got {embeddings.dtype}")
    embeddings = embeddings.astype(np.float32)
    if not np.isfinite(embeddings).all():
        raise EdgefaceError(f"{source}: templates contain NaN or infinite values")
    norms = np.linalg.norm(embeddings, axis=1)
    if len(norms) and np.abs(norms - 1.0).max() > UNIT_NORM_TOLERANCE:
        raise EdgefaceError(f"{source}: templates must have unit length (found norms from {norms.min():.3g} "
                            f"to {norms.max():.3g})")
    return embeddings


def read_npz_bounded(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arrays of an .npz, refusing object arrays and any array whose header asks for more than MAX_IMPORT_BYTES
    (a small crafted file can declare gigabytes) before reading it."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name in names:
                with archive.open(f"{name}.npy") as member:
                    version = np.lib.format.read_magic(member)
                    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                    if version not in readers:
                        raise EdgefaceError(f"{path}: array {name!r} has an unknown .npy version {version}")
                    shape, _, dtype = readers[version](member)  # the header only: nothing is allocated yet
                    if dtype.hasobject:
                        raise EdgefaceError(f"{path}: array {name!r} holds Python objects; refused (no pickle)")
                    if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > MAX_IMPORT_BYTES:
                        raise EdgefaceError(f"{path}: array {name!r} declares {shape} {dtype}, too large")
        with np.load(path, allow_pickle=False) as data:
            for name in names:
                arrays[name] = data[name]
    except FileNotFoundError:
        raise EdgefaceError(f"gallery export not found: {path}") from None
    except KeyError as exc:
        raise EdgefaceError(f"{path} is not an edgeface gallery export: missing {exc}") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise EdgefaceError(f"{path} is not an edgeface gallery export: {str(exc)[:120]}") from None
    return arrays


def read_export(path: str | Path) -> dict:
    """An exported gallery, checked whole before anything is written: header, names, template size, finiteness and
    unit length. One bad row refuses the file."""
    path = Path(path)
    arrays = read_npz_bounded(path, ("header", "names", "embeddings", "image_sha256", "quality"))
    try:
        header = json.loads(str(arrays["header"]))
    except (json.JSONDecodeError, RecursionError):
        raise EdgefaceError(f"{path}: the header is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != "edgeface-gallery/1":
        raise EdgefaceError(f"{path} is not an edgeface gallery export")
    sha, dim, alignment = header.get("model_sha256"), header.get("embedding_size"), header.get("alignment")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise EdgefaceError(f"{path}: model_sha256 must be 64 hex digits")
    if isinstance(dim, bool) or not isinstance(dim, int) or not 2 <= dim <= 65536:
        raise EdgefaceError(f"{path}: embedding_size must be a whole number from 2 to 65536, got {dim!r}")
    if alignment is not None and alignment not in ALIGNMENTS:
        raise EdgefaceError(f"{path}: unknown alignment {alignment!r}")
    names, hashes = arrays["names"], arrays["image_sha256"]
    quality = arrays["quality"]
    if names.dtype.kind != "U" or hashes.dtype.kind != "U" or quality.dtype.kind != "f":
        raise EdgefaceError(f"{path}: names and image hashes must be text, quality numbers")
    count = len(arrays["embeddings"]) if arrays["embeddings"].ndim else -1
    if not (names.ndim == hashes.ndim == quality.ndim == 1) or not (len(names) == len(hashes) == len(quality)
                                                                      == count):
        raise EdgefaceError(f"{path}: names, templates, hashes and quality differ in length")
    if count > MAX_IMPORT_TEMPLATES:
        raise EdgefaceError(f"{path}: {count:,} templates, more than {MAX_IMPORT_TEMPLATES:,}")
    emb = check_templates(arrays["embeddings"], dim, str(path))
    names, hashes, quality = names.tolist(), hashes.tolist(), quality.tolist()
    for name in sorted(set(names)):
        check_name(name)
    return {"model_sha256": sha, "embedding_size": dim, "alignment": alignment or LEGACY_ALIGNMENT, "names": names,
            "embeddings": emb, "image_sha256": hashes, "quality": quality}


MAX_STORED_FACE = 480  # pixels, the long side of a kept face crop (about twice the face)


@dataclass
class StoredFace:
    """An enrolled face kept for re-embedding: a JPEG crop with margin, and the detection in its coordinates."""

    jpeg: bytes
    box: list[float]
    landmarks: list[list[float]]

    def points_json(self) -> str:
        return json.dumps({"box": self.box, "landmarks": self.landmarks})

    @classmethod
    def from_row(cls, jpeg: bytes, points: str | None) -> StoredFace:
        try:
            data = json.loads(points or "")
            return cls(bytes(jpeg), [float(v) for v in data["box"]][:4],
                       [[float(x), float(y)] for x, y in data["landmarks"]])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise EdgefaceError("a stored face has no valid box and landmarks") from None


class GalleryMoved(EdgefaceError):
    """The gallery was moved to another model (``gallery upgrade``) by another process while this one used it: its
    templates no longer compare with this model's embeddings."""


class Gallery:
    """A gallery file. ``Gallery(path, model_sha, dim)`` opens (or creates) it for that model."""

    def __init__(self, path: str | Path | None = None, model_sha256: str | None = None,
                 embedding_size: int | None = None, create: bool = True, alignment: str | None = None,
                 read_only: bool = False, model: str | None = None) -> None:
        """``read_only``: the caller only matches (recognition). On a full disk, where SQLite cannot even create
        the WAL's shared-memory file, such a gallery is then read as it stands on disk (a snapshot: enrolments
        made meanwhile are not seen), instead of stopping recognition."""
        self.path = Path(path) if path else default_gallery()
        self.snapshot = False
        self.read_only = read_only
        self.bound_to: str | None = None  # the model this connection matches for (``bind``)
        self._cache: tuple[int, Templates] | None = None
        created = False
        if not self.path.exists():
            if not create:
                raise EdgefaceError(f"gallery not found: {self.path}")
            self._create_file()
            created = True
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA synchronous = NORMAL")
            if not self._has_schema():
                self.db.executescript(SCHEMA)  # idempotent; executescript manages its own transaction
            with self.transaction():
                self._check_version()
        except sqlite3.DatabaseError as exc:
            if read_only and not created and disk_full(self.path):
                self._open_snapshot()
                if model_sha256:
                    self.bind(model_sha256, int(embedding_size or 0), alignment, model)
                return
            if created:  # a gallery that never got its schema (a full disk) is not left behind empty
                with contextlib.suppress(OSError, AttributeError, sqlite3.Error):
                    self.db.close()
                with contextlib.suppress(OSError):
                    for leftover in (self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))):
                        leftover.unlink(missing_ok=True)
            raise database_error(self.path, exc, "not a usable SQLite gallery: ") from None
        if model_sha256:
            self.bind(model_sha256, int(embedding_size or 0), alignment, model)

    def _open_snapshot(self) -> None:
        with contextlib.suppress(sqlite3.Error, AttributeError):
            self.db.close()
        try:
            self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                                      isolation_level=None)
            self._check_version()
        except sqlite3.DatabaseError as exc:
            raise database_error(self.path, exc) from None
        self.snapshot = True
        print(f"edgeface: warning: the disk holding {self.path} is full: its gallery is read as it stands (people "
              "enrolled from now on are not seen until space is freed)", file=sys.stderr)

    def _create_file(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise EdgefaceError(f"cannot create gallery {self.path}: {exc.strerror}") from None

    def _has_schema(self) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() is not None

    def _check_version(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif not str(row[0]).isdigit():
            raise damaged(self.path, f"schema_version {row[0]!r}")
        elif int(row[0]) > SCHEMA_VERSION:
            raise EdgefaceError(f"gallery {self.path} has schema {row[0]}, newer than this edgeface "
                                f"({SCHEMA_VERSION}): upgrade edgeface")
        elif int(row[0]) == 1:  # in the caller's transaction: the columns and the version move together
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(templates)")}
            for column, kind in (("face", "BLOB"), ("face_points", "TEXT")):
                if column not in columns:
                    self.db.execute(f"ALTER TABLE templates ADD COLUMN {column} {kind}")
            self.db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: a crash mid-way leaves nothing half-written."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @guarded
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    @guarded
    def bind(self, model_sha256: str, embedding_size: int, alignment: str | None = None,
             model: str | None = None) -> None:
        """Tie an empty gallery to a model (its identity, alignment and ``model_ref``, so later commands find it
        without --model), or refuse others than the one it was enrolled with, naming both."""
        self.bound_to = model_sha256
        with contextlib.nullcontext() if self.snapshot else self.transaction():
            sha, dim = self.meta("model_sha256"), self.meta("embedding_size")
            if sha is None and self.snapshot:
                raise EdgefaceError(f"gallery {self.path} is empty, and its disk is full")
            if sha is None:
                for key, value in (("model_sha256", model_sha256), ("embedding_size", str(embedding_size)),
                                   ("alignment", alignment), ("model", model)):
                    if value:
                        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
                return
            if sha != model_sha256 or (embedding_size and int(dim or 0) != embedding_size):
                theirs = f"{self.meta('model')} " if self.meta("model") else ""
                ours = f"{model} " if model else ""
                shipped = shipped_name_of(sha)
                use = f"use that model (--model {shipped}, as it ships now)" if shipped else "use that model"
                raise EdgefaceError(
                    f"gallery {self.path} was enrolled with model {theirs}({sha[:12]}, {dim}-d), not with this "
                    f"model {ours}({model_sha256[:12]}, {embedding_size}-d): move it to this model with 'edgeface "
                    f"gallery upgrade', {use}, or enrol into a new --gallery")
            if alignment and alignment != self.alignment:
                detector = self.alignment.split("-")[0]
                raise EdgefaceError(
                    f"gallery {self.path} was enrolled with {self.alignment} alignment, not {alignment}: pass "
                    f"--detector {detector}, or re-enrol into a new --gallery with this detector")

    @property
    def alignment(self) -> str:
        return self.meta("alignment") or LEGACY_ALIGNMENT

    @property
    def embedding_size(self) -> int:
        value = self.meta("embedding_size") or "0"
        if not str(value).isdigit() or not 0 <= int(value) <= 65536:
            raise damaged(self.path, f"embedding_size {value!r}")
        return int(value)

    @guarded
    def add(self, name: str, embeddings: np.ndarray, image_hashes: list[str | None] | None = None,
            qualities: list[float | None] | None = None, faces: list[StoredFace | None] | None = None) -> int:
        """Add templates for ``name`` (creating the person) in one transaction; returns the person's count.

        A photo whose sha256 is already in the gallery is not added twice (enrolling a folder again, importing an
        export into its own gallery): callers skip those first with :meth:`known_hashes`. ``faces``: the face each
        template was made from, kept for ``gallery upgrade`` (None: not kept)."""
        name = check_name(name)
        dim = self.embedding_size
        embeddings = check_templates(embeddings, dim, f"templates for {name}")
        n = len(embeddings)
        image_hashes = image_hashes or [None] * n
        qualities = qualities or [None] * n
        kept = [(f.jpeg, f.points_json()) if f else (None, None) for f in faces or [None] * n]
        now = time.time()
        with self.transaction():
            self.check_distinct(name)
            self.db.execute("INSERT OR IGNORE INTO people (name, created) VALUES (?, ?)", (name, now))
            pid = self.db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()[0]
            self.db.executemany(
                "INSERT INTO templates (person_id, embedding, image_sha256, quality, created, face, face_points) "
                "VALUES (?,?,?,?,?,?,?)",
                [(pid, e.tobytes(), h, q, now, *f)
                 for e, h, q, f in zip(embeddings, image_hashes, qualities, kept, strict=True)])
            return self.db.execute("SELECT COUNT(*) FROM templates WHERE person_id=?", (pid,)).fetchone()[0]

    @guarded
    def stored_faces(self) -> list[tuple[int, str, StoredFace | None]]:
        """(template id, person, the face it was made from or None) for every template, in id order."""
        rows = self.db.execute("SELECT t.id, p.name, t.face, t.face_points FROM templates t "
                               "JOIN people p ON p.id = t.person_id ORDER BY t.id").fetchall()
        return [(r[0], r[1], StoredFace.from_row(r[2], r[3]) if r[2] is not None else None) for r in rows]

    @guarded
    def face_jpeg(self, name: str) -> bytes | None:
        """The first kept face of a person (a JPEG crop with margin), for a thumbnail; None if none was kept."""
        row = self.db.execute("SELECT t.face FROM templates t JOIN people p ON p.id = t.person_id "
                              "WHERE p.name = ? AND t.face IS NOT NULL ORDER BY t.id LIMIT 1", (name,)).fetchone()
        return row[0] if row else None

    @guarded
    def rebind(self, model_sha256: str, embedding_size: int, alignment: str | None,
               embeddings: dict[int, np.ndarray], model: str | None = None) -> None:
        """Replace every template (id -> new embedding) and the model the gallery is bound to, in one transaction:
        a crash leaves the gallery on its old model, whole."""
        emb = check_templates(np.stack(list(embeddings.values())), embedding_size, f"gallery {self.path}") \
            if embeddings else np.zeros((0, embedding_size), np.float32)
        with self.transaction():
            ids = {r[0] for r in self.db.execute("SELECT id FROM templates")}
            if ids != set(embeddings):
                raise EdgefaceError(f"gallery {self.path} changed during the upgrade: run it again")
            self.db.executemany("UPDATE templates SET embedding=? WHERE id=?",
                                [(e.tobytes(), i) for i, e in zip(embeddings, emb, strict=True)])
            for key, value in (("model_sha256", model_sha256), ("embedding_size", str(embedding_size)),
                               ("alignment", alignment), ("model", model)):
                if value:
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        self._cache = None
        self.bound_to = model_sha256

    @guarded
    def known_hashes(self) -> dict[str, str]:
        """image sha256 -> the person it is enrolled as."""
        rows = self.db.execute("SELECT t.image_sha256, p.name FROM templates t JOIN people p ON p.id = t.person_id "
                               "WHERE t.image_sha256 IS NOT NULL AND t.image_sha256 != ''").fetchall()
        return {h: n for h, n in rows}

    @guarded
    def check(self) -> None:
        """Cheap consistency checks a listing should not skip: the embedding size, every template's length."""
        dim = self.embedding_size
        short = self.db.execute("SELECT COUNT(*) FROM templates WHERE length(embedding) != ?", (4 * dim,)).fetchone()
        if short[0]:
            raise damaged(self.path, f"{short[0]} template(s) are not {dim} float32 values")

    @guarded
    def people(self, name: str | None = None, limit: int | None = None) -> list[dict]:
        """People by name with their template counts; ``name``: only names containing it (any case); ``limit``: the
        first that many (a 100k gallery is listed in a fraction of a second either way)."""
        pattern = "%" + (name or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.db.execute(
            "SELECT p.name, COUNT(t.id), p.created, AVG(t.quality) FROM people p "
            "LEFT JOIN templates t ON t.person_id = p.id WHERE p.name LIKE ? ESCAPE '\\' GROUP BY p.id "
            "ORDER BY p.name LIMIT ?", (pattern, -1 if limit is None else limit)).fetchall()
        return [{"name": r[0], "templates": r[1], "created": r[2], "quality": r[3]} for r in rows]

    @guarded
    def counts(self) -> dict[str, int]:
        """How many people and templates: what a listing says first."""
        people = self.db.execute("SELECT COUNT(*) FROM people").fetchone()[0]
        return {"people": people, "templates": self.db.execute("SELECT COUNT(*) FROM templates").fetchone()[0]}

    @guarded
    def remove(self, name: str) -> None:
        with self.transaction():
            if self.db.execute("DELETE FROM people WHERE name=?", (name,)).rowcount == 0:
                raise NotFound(f"no person named {name!r} in {self.path}")

    def check_distinct(self, name: str, besides: str | None = None) -> None:
        """Refuse a new name whose event slug (``slug``) another person already has: ``JOE-B`` beside ``joe_b``
        would share one MQTT topic and one Home Assistant entity. Runs inside the caller's transaction."""
        for (other,) in self.db.execute("SELECT name FROM people WHERE name != ?", (name,)):
            if other != besides and slug(other) == slug(name):
                raise EdgefaceError(f"{name!r} would share its event topic and Home Assistant id "
                                    f"({slug(name)!r}) with {other!r}, who is enrolled: pick another name")

    @guarded
    def rename(self, old: str, new: str) -> None:
        new = check_name(new)
        with self.transaction():
            if self.db.execute("SELECT 1 FROM people WHERE name=?", (new,)).fetchone():
                raise EdgefaceError(f"{new!r} is already enrolled: remove it first or pick another name")
            self.check_distinct(new, besides=old)
            if self.db.execute("UPDATE people SET name=? WHERE name=?", (new, old)).rowcount == 0:
                raise NotFound(f"no person named {old!r} in {self.path}")

    @guarded
    def templates(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(embeddings (N, D), person index per template (N,), names); re-read only after another commit."""
        t = self._current()
        return t.emb, t.owner, t.names

    def _current(self) -> Templates:
        """The templates as of the last commit, any connection's (read again, and indexed, only after one)."""
        # data_version moves when another connection commits; total_changes when this one writes
        stamp = hash((self.db.execute("PRAGMA data_version").fetchone()[0], self.db.total_changes))
        if self._cache is None or self._cache[0] != stamp:
            if self._cache is not None:
                self.check_model()
            dim = self.embedding_size
            # one statement, so one consistent snapshot while other processes enrol (WAL)
            rows = self.db.execute("SELECT p.name, t.embedding FROM templates t JOIN people p ON p.id = t.person_id "
                                   "ORDER BY p.name, t.id").fetchall()
            names = sorted({r[0] for r in rows})
            index = {n: i for i, n in enumerate(names)}
            owner = np.fromiter((index[r[0]] for r in rows), np.int64, count=len(rows))
            blobs = [r[1] for r in rows]
            if any(not isinstance(b, bytes) or len(b) != 4 * dim for b in blobs):
                raise damaged(self.path, f"a template is not {dim} float32 values")
            emb = np.frombuffer(b"".join(blobs), np.float32).reshape(len(rows), dim) if rows \
                else np.zeros((0, dim), np.float32)
            if rows:
                check_templates(emb, dim, f"gallery {self.path}")
            self._cache = (stamp, Templates(emb, owner, names))
        return self._cache[1]

    def check_model(self) -> None:
        """Raise ``GalleryMoved`` when another process moved the gallery to a model other than this connection's."""
        if self.bound_to and self.meta("model_sha256") != self.bound_to:
            raise GalleryMoved(f"gallery {self.path} was moved to model {self.meta('model') or 'another'} "
                               "while this ran ('gallery upgrade')")

    @guarded
    def match(self, queries: np.ndarray, threshold: float) -> list[Match]:
        """Each query's person (``recognize.match.Templates.match``) among this gallery's current templates."""
        return self._current().match(queries, threshold)

    @guarded
    def ranked(self, query: np.ndarray, count: int) -> list[tuple[str, float]]:
        """The ``count`` closest enrolled people to one embedding with their scores (``Templates.ranked``)."""
        return self._current().ranked(query, count)

    @guarded
    def template_ids(self, name: str | None = None) -> list[tuple[int, str]]:
        """(template id, person) of every template, or of one person's, in id order: how clients that address
        single enrolled faces (CompreFace's ``image_id``) list them."""
        rows = self.db.execute("SELECT t.id, p.name FROM templates t JOIN people p ON p.id = t.person_id "
                               "WHERE ? IS NULL OR p.name = ? ORDER BY t.id", (name, name)).fetchall()
        return [(r[0], r[1]) for r in rows]

    @guarded
    def remove_template(self, template_id: int) -> str:
        """Delete one template; returns whose it was. The person stays, with what templates they have left."""
        with self.transaction():
            row = self.db.execute("SELECT p.name FROM templates t JOIN people p ON p.id = t.person_id WHERE t.id = ?",
                                  (template_id,)).fetchone()
            if row is None:
                raise NotFound(f"no enrolled face with id {template_id} in {self.path}")
            self.db.execute("DELETE FROM templates WHERE id = ?", (template_id,))
        return row[0]

    @guarded
    def clear_person(self, name: str) -> int:
        """Delete every template of ``name`` but keep the person (a name with no face matches nobody); returns
        how many were deleted."""
        with self.transaction():
            row = self.db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no person named {name!r} in {self.path}")
            return self.db.execute("DELETE FROM templates WHERE person_id = ?", (row[0],)).rowcount

    @guarded
    def add_person(self, name: str) -> bool:
        """A person with no face yet (enrolled faces come later); False when they already exist."""
        name = check_name(name)
        with self.transaction():
            if self.db.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone():
                return False
            self.check_distinct(name)
            self.db.execute("INSERT INTO people (name, created) VALUES (?, ?)", (name, time.time()))
        return True

    @guarded
    def export(self, path: str | Path) -> Path:
        """Portable copy: an .npz of plain arrays (no pickle) with a JSON header."""
        path = Path(path)
        rows = self.db.execute("SELECT p.name, t.embedding, t.image_sha256, t.quality, t.created FROM templates t "
                               "JOIN people p ON p.id = t.person_id ORDER BY p.name, t.id").fetchall()
        header = {"format": "edgeface-gallery/1", "model_sha256": self.meta("model_sha256"),
                  "embedding_size": self.embedding_size, "alignment": self.alignment,
                  **({"model": self.meta("model")} if self.meta("model") else {})}
        dim = self.embedding_size
        arrays = {
            "header": np.array(json.dumps(header)),
            "names": np.array([r[0] for r in rows], dtype=str),
            "embeddings": (np.stack([np.frombuffer(r[1], np.float32) for r in rows]) if rows
                           else np.zeros((0, dim), np.float32)),
            "image_sha256": np.array([r[2] or "" for r in rows], dtype=str),
            "quality": np.array([np.nan if r[3] is None else r[3] for r in rows], np.float64),
        }
        with atomic_write(path, perms=0o600) as handle:
            np.savez(handle, **arrays)
        return path

    @guarded
    def import_export(self, export: dict) -> dict:
        """Merge an export checked by :func:`read_export` (same model and alignment) in one transaction; photos
        already in the gallery (same image sha256) are skipped. Returns {"added": n, "skipped_duplicates": m}."""
        self.bind(export["model_sha256"], export["embedding_size"], export["alignment"])
        known = self.known_hashes()
        added = skipped = 0
        with self.transaction():
            now = time.time()
            for name, e, h, q in zip(export["names"], export["embeddings"], export["image_sha256"], export["quality"],
                                     strict=True):
                if h and h in known:
                    skipped += 1
                    continue
                known[h] = name
                self.db.execute("INSERT OR IGNORE INTO people (name, created) VALUES (?, ?)", (name, now))
                pid = self.db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()[0]
                self.db.execute("INSERT INTO templates (person_id, embedding, image_sha256, quality, created) "
                                "VALUES (?,?,?,?,?)",
                                (pid, e.tobytes(), h or None, None if not np.isfinite(q) else q, now))
                added += 1
        return {"added": added, "skipped_duplicates": skipped}

    @guarded

    def close(self) -> None:
        self.db.close()


def model_for(path: str | Path | None, model: str | Path | None = None) -> str | Path | None:
    """The model a command uses with a gallery: the one given, else the one the gallery remembers, else None (the
    shipped default). Every opener asks here: the CLI, the API's ``Gallery`` and ``serve``."""
    return model if model is not None else gallery_model(path)


def bind_gallery(path: str | Path | None, model: str | Path | None, embedder: Embedder, alignment: str,
                 create: bool = True, read_only: bool = False) -> Gallery:
    """The gallery at ``path`` bound to ``embedder`` (loaded from ``model``, as given): refused if it was enrolled
    with another model or alignment; a new one remembers ``model_ref(model)``."""
    from edgeface.vision.embed import embedder_identity

    return Gallery(path, embedder_identity(embedder), embedder.size, create=create, read_only=read_only,
                   alignment=alignment, model=model_ref(model))

