"""Atomic file output and the per-user cache/data folders.

Every file edgeface produces goes through :func:`atomic_write` so an interrupted run (Ctrl-C, full disk, power
loss) leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from edgeface.errors import EdgefaceError


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", perms: int | None = None) -> Iterator[IO[Any]]:
    """Yield a temp file beside ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise EdgefaceError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        if perms is not None:
            os.fchmod(fd, perms)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise EdgefaceError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False)
        handle.write("\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file, turning I/O and syntax problems into one-line errors."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise EdgefaceError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgefaceError(f"cannot read JSON {path}: {exc}") from None
    except RecursionError:
        raise EdgefaceError(f"cannot read JSON {path}: nested too deeply") from None


def sha256_file(path: str | Path) -> str:
    """The identity of a model file: sha256 of its bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir(*parts: str) -> Path:
    """``$EDGEFACE_CACHE`` or ``~/.cache/edgeface``: never beside the user's (possibly read-only) data."""
    root = Path(os.environ.get("EDGEFACE_CACHE") or Path.home() / ".cache" / "edgeface")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """``$EDGEFACE_HOME`` or ``~/.local/share/edgeface``: galleries and other user state."""
    root = Path(os.environ.get("EDGEFACE_HOME") or Path.home() / ".local" / "share" / "edgeface")
    root.mkdir(parents=True, exist_ok=True)
    return root


def portable(obj: Any) -> Any:
    """``obj`` with every absolute path in its strings made portable: under the home folder as ``~/...``, anything
    else relative to the working directory (``../shared/data/...`` from a checkout). Why: manifests inside shipped
    models and committed result files travel; the builder's file system must not travel with them."""
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v) for v in obj]
    if not isinstance(obj, str) or "/" not in obj:
        return obj
    return " ".join(_portable_word(w) for w in obj.split(" ")) if " " in obj else _portable_word(obj)


def _portable_word(word: str) -> str:
    if not word.startswith("/") or word.strip("/") == "":  # a lone "/" is a division in a formula, not the root
        return word
    home = str(Path.home())
    if word == home or word.startswith(home + "/"):
        return "~" + word[len(home):]
    return os.path.relpath(word, Path.cwd())


def read_private_text(path: Path, option: str) -> str:
    """A secret's file (a token, a password), stripped: it must be a regular file only its owner may read, as ssh
    insists for keys; anything else is one line naming ``option``, the file and the ``chmod`` that fixes it."""
    import stat

    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise EdgefaceError(f"{option} {path} is not a regular file")
        if st.st_mode & 0o077:
            raise EdgefaceError(f"{option} {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}): "
                                f"chmod 600 {path}")
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise EdgefaceError(f"{option} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgefaceError(f"cannot read {option} {path}: {getattr(exc, 'strerror', None) or exc}") from None
