"""Where the images of a dataset are and whom they show.

Layouts: ``folders`` (``<person>/<img>``: ORL, LFW, most user data), ``flat`` (images without identities, e.g.
UTKFace crops for distillation), ``celeba`` (a ``filename identity`` list). ``auto`` picks by what it finds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeface.choices import LAYOUTS
from edgeface.errors import EdgefaceError
from edgeface.vision.image import is_image


@dataclass(frozen=True)
class Item:
    """One source image and its identity (None for unlabeled images)."""

    path: Path
    identity: str | None


def check_identity(identity: str) -> str:
    """An identity becomes a folder name under DST: one plain path component, never a way out of DST."""
    bad = (not identity or identity in (".", "..") or identity.startswith(".") or len(identity) > 255
           or any(c in identity for c in ("/", "\\", "\0")) or Path(identity).is_absolute()
           or any(ord(c) < 32 for c in identity))
    if bad:
        raise EdgefaceError(f"identity {identity[:60]!r} cannot be a folder name under DST (no path separators, "
                            "no leading dot, no control characters, at most 255 characters)")
    return identity


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))


def read_identities(path: Path) -> dict[str, str]:
    """CelebA ``identity_CelebA.txt``: one ``filename identity`` per line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EdgefaceError(f"identities file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgefaceError(f"cannot read identities file {path}: {exc}") from None
    out = {}
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise EdgefaceError(f"{path}:{n}: expected 'FILENAME IDENTITY', got {line[:80]!r}")
        out[parts[0]] = parts[1]
    if not out:
        raise EdgefaceError(f"identities file is empty: {path}")
    return out


def detect_layout(src: Path, identities: Path | None) -> str:
    if identities is not None:
        return "celeba"
    if any(p.is_dir() and not p.name.startswith(".") for p in src.iterdir()):
        return "folders"
    return "flat"


def list_items(src: str | Path, layout: str = "auto", identities: Path | None = None, prefix: str = "",
               exclude: set[str] | None = None) -> list[Item]:
    """Every image of the dataset with its identity (``prefix`` + name), people in ``exclude`` left out."""
    src = Path(src)
    if not src.is_dir():
        raise EdgefaceError(f"source directory not found: {src}")
    src = src.resolve()  # manifests record absolute sources, so a resumed run matches whatever cwd it has
    if layout not in LAYOUTS:
        raise EdgefaceError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(src, identities)
    exclude = exclude or set()
    items: list[Item] = []
    if layout == "folders":
        for person in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if person.name in exclude:
                continue
            items += [Item(p, prefix + person.name) for p in _images(person)]
    elif layout == "flat":
        items = [Item(p, None) for p in _images(src)]
    else:
        if identities is None:
            raise EdgefaceError("the celeba layout needs --identities FILE")
        table = read_identities(identities)
        root = (src / "images" if (src / "images").is_dir() else src).resolve()
        outside = next((name for name in table if not (root / name).resolve().is_relative_to(root)), None)
        if outside is not None:
            raise EdgefaceError(f"{identities} names a file outside {root}: {outside[:80]!r}")
        items = [Item(root / name, prefix + ident) for name, ident in sorted(table.items())
                 if (root / name).exists()]
        if not items:
            raise EdgefaceError(f"none of the files listed in {identities} exist under {root}")
    if not items:
        raise EdgefaceError(f"no images found in {src} (layout {layout})")
    for identity in sorted({i.identity for i in items if i.identity is not None}):
        check_identity(identity)
    return items
