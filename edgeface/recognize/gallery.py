"""The enrolment gallery: people and their face templates in SQLite (WAL, transactions, schema version).

Templates are biometric data: the file is created with mode 0600, nothing is pickled, and a gallery is bound to
the model (sha256 + embedding size) that made its templates: opening it with another model is refused, since
embeddings of different models cannot be compared. It also records the alignment its templates were made with
(``yunet-5pt`` or ``blazeface-4pt``, from the detector's landmarks): a face aligned from other landmarks sits a few
pixels off and scores lower, so recognising with another detector is refused with the way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.files import atomic_write, data_dir

SCHEMA_VERSION = 1
LEGACY_ALIGNMENT = "blazeface-4pt"  # galleries enrolled before the alignment was recorded used BlazeFace
NAME_MAX = 100
NAME_RULE = re.compile(r"^[^\W_][\w .'\-]*$", re.UNICODE)
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL, image_sha256 TEXT, quality REAL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS templates_person ON templates(person_id);
"""


def default_gallery() -> Path:
    return data_dir() / "gallery.sqlite"


def check_name(name: str) -> str:
    """Person names: 1-100 characters, letters/digits first, then letters, digits, space . ' - _ only."""
    name = name.strip()
    if not name:
        raise EdgefaceError("person name is empty")
    if len(name) > NAME_MAX:
        raise EdgefaceError(f"person name is {len(name)} characters long; the limit is {NAME_MAX}")
    if not NAME_RULE.match(name):
        bad = next((c for c in name if not (c.isalnum() or c in " .'-_")), name[0])
        raise EdgefaceError(f"person name {name[:40]!r} has a character not allowed ({bad!r}): use letters, "
                            "digits, space, . ' - _ and start with a letter or digit")
    return name


@dataclass
class Match:
    name: str | None
    score: float
    person: str  # best candidate even when below threshold


class Gallery:
    """A gallery file. ``Gallery(path, model_sha, dim)`` opens (or creates) it for that model."""

    def __init__(self, path: str | Path | None = None, model_sha256: str | None = None,
                 embedding_size: int | None = None, create: bool = True, alignment: str | None = None) -> None:
        self.path = Path(path) if path else default_gallery()
        if not self.path.exists():
            if not create:
                raise EdgefaceError(f"gallery not found: {self.path}")
            self._create_file()
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
            raise EdgefaceError(f"{self.path} is not a usable gallery database: {exc}") from None
        self._cache: tuple[int, np.ndarray, np.ndarray, list[str]] | None = None
        if model_sha256:
            self.bind(model_sha256, int(embedding_size or 0), alignment)

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
        elif int(row[0]) > SCHEMA_VERSION:
            raise EdgefaceError(f"gallery {self.path} has schema {row[0]}, newer than this edgeface "
                                f"({SCHEMA_VERSION}): upgrade edgeface")

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

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def bind(self, model_sha256: str, embedding_size: int, alignment: str | None = None) -> None:
        """Tie an empty gallery to a model (and alignment), or refuse others than those it was enrolled with."""
        with self.transaction():
            sha, dim = self.meta("model_sha256"), self.meta("embedding_size")
            if sha is None:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('model_sha256', ?)", (model_sha256,))
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('embedding_size', ?)", (str(embedding_size),))
                if alignment:
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES ('alignment', ?)", (alignment,))
                return
            if sha != model_sha256 or (embedding_size and int(dim or 0) != embedding_size):
                raise EdgefaceError(
                    f"gallery {self.path} was enrolled with model {sha[:12]} ({dim}-d), not with this model "
                    f"{model_sha256[:12]} ({embedding_size}-d): use that model or enrol into a new --gallery")
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
        return int(self.meta("embedding_size") or 0)

    def add(self, name: str, embeddings: np.ndarray, image_hashes: list[str | None] | None = None,
            qualities: list[float | None] | None = None) -> int:
        """Add templates for ``name`` (creating the person) in one transaction; returns the person's count."""
        name = check_name(name)
        embeddings = np.asarray(embeddings, np.float32)
        dim = self.embedding_size
        if embeddings.ndim != 2 or (dim and embeddings.shape[1] != dim):
            raise EdgefaceError(f"templates must be (N, {dim or 'D'}) embeddings, got {embeddings.shape}")
        n = len(embeddings)
        image_hashes = image_hashes or [None] * n
        qualities = qualities or [None] * n
        now = time.time()
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO people (name, created) VALUES (?, ?)", (name, now))
            pid = self.db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()[0]
            self.db.executemany(
                "INSERT INTO templates (person_id, embedding, image_sha256, quality, created) VALUES (?,?,?,?,?)",
                [(pid, e.tobytes(), h, q, now) for e, h, q in zip(embeddings, image_hashes, qualities, strict=True)])
            return self.db.execute("SELECT COUNT(*) FROM templates WHERE person_id=?", (pid,)).fetchone()[0]

    def people(self) -> list[dict]:
        rows = self.db.execute(
            "SELECT p.name, COUNT(t.id), p.created, AVG(t.quality) FROM people p "
            "LEFT JOIN templates t ON t.person_id = p.id GROUP BY p.id ORDER BY p.name").fetchall()
        return [{"name": r[0], "templates": r[1], "created": r[2], "quality": r[3]} for r in rows]

    def remove(self, name: str) -> None:
        with self.transaction():
            if self.db.execute("DELETE FROM people WHERE name=?", (name,)).rowcount == 0:
                raise EdgefaceError(f"no person named {name!r} in {self.path}")

    def rename(self, old: str, new: str) -> None:
        new = check_name(new)
        with self.transaction():
            if self.db.execute("SELECT 1 FROM people WHERE name=?", (new,)).fetchone():
                raise EdgefaceError(f"{new!r} is already enrolled: remove it first or pick another name")
            if self.db.execute("UPDATE people SET name=? WHERE name=?", (new, old)).rowcount == 0:
                raise EdgefaceError(f"no person named {old!r} in {self.path}")

    def templates(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(embeddings (N, D), person index per template (N,), names); re-read only after another commit."""
        # data_version moves when another connection commits; total_changes when this one writes
        stamp = hash((self.db.execute("PRAGMA data_version").fetchone()[0], self.db.total_changes))
        if self._cache is None or self._cache[0] != stamp:
            rows = self.db.execute("SELECT p.name, t.embedding FROM templates t JOIN people p ON p.id = t.person_id "
                                   "ORDER BY p.name, t.id").fetchall()
            names = sorted({r[0] for r in rows})
            index = {n: i for i, n in enumerate(names)}
            dim = self.embedding_size
            emb = (np.stack([np.frombuffer(r[1], np.float32) for r in rows]) if rows
                   else np.zeros((0, dim), np.float32))
            self._cache = (stamp, emb, np.array([index[r[0]] for r in rows], np.int64), names)
        return self._cache[1], self._cache[2], self._cache[3]

    def match(self, queries: np.ndarray, threshold: float) -> list[Match]:
        """Top-1 person per query by cosine similarity (best template of each person); below threshold: None."""
        emb, owner, names = self.templates()
        queries = np.asarray(queries, np.float32)
        if len(emb) == 0:
            return [Match(None, 0.0, "") for _ in queries]
        sims = queries @ emb.T
        out = []
        for row in sims:
            per_person = np.full(len(names), -1.0, np.float32)
            np.maximum.at(per_person, owner, row)
            best = int(np.argmax(per_person))
            score = float(per_person[best])
            out.append(Match(names[best] if score >= threshold else None, score, names[best]))
        return out

    def export(self, path: str | Path) -> Path:
        """Portable copy: an .npz of plain arrays (no pickle) with a JSON header."""
        path = Path(path)
        rows = self.db.execute("SELECT p.name, t.embedding, t.image_sha256, t.quality, t.created FROM templates t "
                               "JOIN people p ON p.id = t.person_id ORDER BY p.name, t.id").fetchall()
        header = {"format": "edgeface-gallery/1", "model_sha256": self.meta("model_sha256"),
                  "embedding_size": self.embedding_size, "alignment": self.alignment}
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

    def import_file(self, path: str | Path) -> int:
        """Merge an exported gallery (same model only) in one transaction; returns templates added."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                names, emb = data["names"].tolist(), data["embeddings"].astype(np.float32)
                hashes, quality = data["image_sha256"].tolist(), data["quality"].tolist()
        except FileNotFoundError:
            raise EdgefaceError(f"gallery export not found: {path}") from None
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise EdgefaceError(f"{path} is not an edgeface gallery export: {exc}") from None
        if header.get("format") != "edgeface-gallery/1":
            raise EdgefaceError(f"{path} is not an edgeface gallery export")
        self.bind(header["model_sha256"], int(header["embedding_size"]), header.get("alignment", LEGACY_ALIGNMENT))
        for name in sorted(set(names)):
            check_name(name)
        with self.transaction():
            now = time.time()
            for name, e, h, q in zip(names, emb, hashes, quality, strict=True):
                self.db.execute("INSERT OR IGNORE INTO people (name, created) VALUES (?, ?)", (name, now))
                pid = self.db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()[0]
                self.db.execute("INSERT INTO templates (person_id, embedding, image_sha256, quality, created) "
                                "VALUES (?,?,?,?,?)", (pid, e.tobytes(), h or None, None if q != q else q, now))
        return len(names)

    def integrity(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        self.db.close()
