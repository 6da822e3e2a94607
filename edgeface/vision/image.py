"""Decode images safely: any format OpenCV reads, any bit depth or channel count, as RGB uint8.

The pixel count is checked from the file header before decoding so a 100-megapixel file is refused instead
of exhausting memory on a small board.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

# OpenCV reads this at import: a second guard for formats whose header we do not parse.
MAX_PIXELS = int(os.environ.get("EDGEFACE_MAX_PIXELS", 50_000_000))
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edgeface.errors import EdgefaceError  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm"}


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding, or None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            i += 2 + length
    return None


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Bytes of an image file -> RGB uint8 (H, W, 3); greyscale, alpha, 16-bit and CMYK are converted."""
    if not data:
        raise EdgefaceError(f"empty image file: {name}")
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise EdgefaceError(
            f"image too large: {name} is {size[0]}x{size[1]} px, the limit is {MAX_PIXELS:,} pixels "
            "(set EDGEFACE_MAX_PIXELS to raise it)")
    if size is not None and 0 in size:
        raise EdgefaceError(f"image has no pixels: {name}")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise EdgefaceError(f"not a readable image (corrupt, truncated or unsupported format): {name}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8, with one-line errors for every way a file can be bad."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EdgefaceError(f"image not found: {path}") from None
    except IsADirectoryError:
        raise EdgefaceError(f"expected an image file, got a directory: {path}") from None
    except OSError as exc:
        raise EdgefaceError(f"cannot read image {path}: {exc.strerror}") from None
    return decode_image(data, str(path))


def write_image(path: str | Path, rgb: np.ndarray, quality: int = 95) -> None:
    """Write an RGB uint8 image atomically (format from the suffix)."""
    from edgeface.files import atomic_write

    path = Path(path)
    suffix = path.suffix.lower() or ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise EdgefaceError(f"cannot encode image for {path}")
    with atomic_write(path) as handle:
        handle.write(buf.tobytes())


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
