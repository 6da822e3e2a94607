"""Decode images safely: PNG, JPEG, BMP, TIFF, WebP and PNM, any bit depth or channel count, as RGB uint8.

The pixel count is read from the file header before decoding so a 100-megapixel file is refused instead of
exhausting memory on a small board (a 93 KB TIFF can decode to 1 GB). A format whose header edgeface cannot read is
refused outright rather than handed to a decoder unchecked.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

# OpenCV reads this at import: a second guard for formats whose header we do not parse.
MAX_PIXELS = int(os.environ.get("EDGEFACE_MAX_PIXELS", 50_000_000))
# the file itself: a 50-megapixel photo is well under 200 MB in any format read here
MAX_IMAGE_BYTES = int(os.environ.get("EDGEFACE_MAX_IMAGE_BYTES", 200_000_000))
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edgeface.errors import EdgefaceError  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm"}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
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


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """Largest width and height named by any IFD tag 256/257 of the first directory chain."""
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", data[4:8])[0]
    width = height = 0
    seen = 0
    while 0 < offset < len(data) - 2 and seen < 64:  # a loop of IFDs is a hostile file: stop
        seen += 1
        count = struct.unpack(order + "H", data[offset : offset + 2])[0]
        for k in range(min(count, 4096)):
            entry = data[offset + 2 + 12 * k : offset + 14 + 12 * k]
            if len(entry) < 12:
                return None
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag in (256, 257):
                value = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
                width, height = (max(width, value), height) if tag == 256 else (width, max(height, value))
        end = offset + 2 + 12 * count
        offset = struct.unpack(order + "I", data[end : end + 4])[0] if end + 4 <= len(data) else 0
    return (width, height) if width and height else None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        return (struct.unpack("<H", data[26:28])[0] & 0x3FFF, struct.unpack("<H", data[28:30])[0] & 0x3FFF)
    return None


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    fields: list[int] = []
    for line in data[2:512].split(b"\n"):
        line = line.split(b"#")[0]
        for token in line.split():
            if not token.isdigit():
                return None
            fields.append(int(token))
            if len(fields) == 2:
                return fields[0], fields[1]
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, BMP, TIFF, WebP or PNM file, or None for any other
    format or a header too damaged to read."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:2] == b"BM" and len(data) >= 26:
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:1] == b"P" and data[1:2] in b"123456" and len(data) > 3:
            return _pnm_size(data)
    except struct.error:
        return None
    return None


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Bytes of an image file -> RGB uint8 (H, W, 3); greyscale, alpha, 16-bit and CMYK are converted."""
    if not data:
        raise EdgefaceError(f"empty image file: {name}")
    size = header_size(data)
    if size is None:
        raise EdgefaceError(f"not a readable image (unsupported format, or a header too damaged to read its size; "
                            f"PNG, JPEG, BMP, TIFF, WebP and PNM are read): {name}")
    if size[0] * size[1] > MAX_PIXELS:
        raise EdgefaceError(
            f"image too large: {name} is {size[0]}x{size[1]} px, the limit is {MAX_PIXELS:,} pixels "
            "(set EDGEFACE_MAX_PIXELS to raise it)")
    if 0 in size:
        raise EdgefaceError(f"image has no pixels: {name}")
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        bgr = None
    if bgr is None or bgr.size == 0:
        raise EdgefaceError(f"not a readable image (corrupt, truncated or unsupported format): {name}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def check_image_file(path: Path) -> int:
    """The size in bytes of a regular image file no larger than MAX_IMAGE_BYTES, else a one-line error: a fifo or
    device (``/dev/zero``) would block or fill memory before any header could be checked."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise EdgefaceError(f"image not found: {path}") from None
    except OSError as exc:
        raise EdgefaceError(f"cannot read image {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise EdgefaceError(f"expected an image file, got a directory: {path}")
    if not stat.S_ISREG(st.st_mode):
        raise EdgefaceError(f"not a regular file (a fifo, device or socket): {path}")
    if st.st_size > MAX_IMAGE_BYTES:
        raise EdgefaceError(f"image file too large: {path} is {st.st_size:,} bytes, the limit is "
                            f"{MAX_IMAGE_BYTES:,} (EDGEFACE_MAX_IMAGE_BYTES)")
    return st.st_size


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8, with one-line errors for every way a file can be bad."""
    path = Path(path)
    check_image_file(path)
    try:
        with open(path, "rb") as handle:  # read at most the limit: the file may grow after the check
            data = handle.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise EdgefaceError(f"cannot read image {path}: {exc.strerror}") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise EdgefaceError(f"image file too large: {path} grew past {MAX_IMAGE_BYTES:,} bytes while being read")
    return decode_image(data, str(path))


def as_array(image: str | Path | np.ndarray) -> np.ndarray:
    """A path read as RGB, or an array checked to be an image: uint8 (H, W, 3), not empty."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if not isinstance(image, np.ndarray):
        try:  # anything numpy reads as an array (a PIL image, nested lists), as face_recognition takes it
            image = np.asarray(image)
        except (TypeError, ValueError):
            raise EdgefaceError(f"an image is a file path or an array, got {type(image).__name__}") from None
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise EdgefaceError(f"an image array must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return image


def as_rgb(image: str | Path | np.ndarray, bgr: bool = False) -> np.ndarray:
    """A path or an array as a contiguous RGB uint8 (H, W, 3) array. ``bgr``: the array is an OpenCV frame; its
    channels are swapped by ``cv2.cvtColor`` (a strided numpy reversal costs 10x as much on a 1080p frame)."""
    array = as_array(image)
    if isinstance(image, (str, Path)):
        return array
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(array)


def image_files(target: Path) -> tuple[list[Path], dict[str, str]]:
    """The images of a folder (sorted), or the one image given, and every entry skipped with the reason: nothing
    in a folder is passed over without a word (subfolders excepted)."""
    if not target.is_dir():
        check_image_file(target)
        return [target], {}
    files, skipped = [], {}
    for entry in sorted(target.iterdir()):
        try:
            if entry.is_dir():
                continue
            regular = entry.is_file()
        except OSError as exc:  # a symlink loop
            skipped[str(entry)] = exc.strerror or "cannot be read"
            continue
        if not regular:
            skipped[str(entry)] = "not a regular file (a fifo, device, socket or dangling link)"
        elif not is_image(entry):
            skipped[str(entry)] = f"not an image type edgeface reads ({entry.suffix or 'no suffix'})"
        else:
            files.append(entry)
    if not files:
        raise EdgefaceError(f"no images in {target}" + (f" ({len(skipped)} other files skipped)" if skipped else ""))
    return files, skipped


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


def square_crop(image: np.ndarray, cx: float, cy: float, side: float) -> tuple[np.ndarray | None, int, int]:
    """A ``side`` x ``side`` crop centred on (cx, cy), padded with black where it leaves the image, and its top-left
    corner in image pixels; None when it misses the image entirely."""
    size = max(1, round(side))
    x0, y0 = round(cx - size / 2), round(cy - size / 2)
    h, w = image.shape[:2]
    crop = image[max(0, y0) : max(0, y0 + size), max(0, x0) : max(0, x0 + size)]
    if crop.size == 0:
        return None, x0, y0
    crop = cv2.copyMakeBorder(crop, max(0, -y0), max(0, y0 + size - h), max(0, -x0), max(0, x0 + size - w),
                              cv2.BORDER_CONSTANT)
    return crop, x0, y0


def square_jpeg(image: np.ndarray, cx: float, cy: float, side: float, max_side: int, quality: int,
                rgb: bool = False) -> tuple[bytes, int, int, float] | None:
    """``square_crop`` shrunk to at most ``max_side`` pixels and JPEG-encoded (``rgb``: the image is RGB, not
    OpenCV's BGR): the bytes, the crop's top-left corner and its scale; None when the square misses the image."""
    crop, x0, y0 = square_crop(image, cx, cy, side)
    if crop is None:
        return None
    scale = min(1.0, max_side / crop.shape[0])
    if scale < 1.0:
        size = max(1, round(crop.shape[0] * scale))
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    crop = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2BGR) if rgb else np.ascontiguousarray(crop)
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return (data.tobytes(), x0, y0, scale) if ok else None


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
