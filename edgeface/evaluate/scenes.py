"""Synthetic camera scenes with known face boxes: face photos pasted at chosen sizes onto busy backgrounds.

Why: a detector is judged by what it finds in the frames users have (a 1080p camera over an entrance, people
3-10 m away), and no labelled set of such frames ships with edgeface. The generator composes them from face
photos whose face box is known, so recall can be scored per face size. It is seeded: the same seed gives the
same scenes, pixel for pixel.

What a scene holds:

* a background mosaic of patches cut from the *corners* of other photos (mostly walls, hair, clothes, scenery,
  rarely a face), scaled up and blurred like an out-of-focus room;
* N people, each a face photo's head region with a feathered elliptical edge, scaled so its face box is the drawn
  width (log-uniform in ``width_range``), placed without overlapping, each with its own blur and light level;
* frame-wide lighting (gamma, gain, a shading gradient, sometimes grey as from an IR camera), sensor noise and a
  JPEG round trip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.vision.image import read_image

# The face box in LFW deep-funneled images (250x250, faces aligned by funnelling): the median of YuNet's, BlazeFace's
# and dlib HOG's boxes over 300 images (widths 93, 106 and 108 px), rounded to a 100 px wide box.
LFW_FACE_BOX = (75.0, 70.0, 175.0, 188.0)
HEAD_MARGIN = 1.6  # the pasted region is the face box grown by this factor (hair, ears, chin, some neck)
FACE_BUCKETS = ((24, 40), (40, 80), (80, 160), (160, 10_000))


@dataclass
class FacePhoto:
    """A photo of one person and where the face is in it (x0, y0, x1, y1)."""

    path: Path
    box: tuple[float, float, float, float] = LFW_FACE_BOX
    identity: str = ""


@dataclass
class Scene:
    """A BGR frame and its ground truth: face boxes (N, 4) in frame pixels and who each face is."""

    image: np.ndarray
    boxes: np.ndarray
    identities: list[str] = field(default_factory=list)

    @property
    def widths(self) -> np.ndarray:
        return self.boxes[:, 2] - self.boxes[:, 0] if len(self.boxes) else np.zeros(0)


def lfw_photos(lfw_dir: Path, exclude: set[str] | None = None) -> list[FacePhoto]:
    """Every LFW deep-funneled image as a FacePhoto with the fixed funnelled face box."""
    lfw_dir = Path(lfw_dir)
    if not lfw_dir.is_dir():
        raise EdgefaceError(f"LFW directory not found: {lfw_dir}")
    photos = [FacePhoto(p, LFW_FACE_BOX, p.parent.name) for p in sorted(lfw_dir.glob("*/*.jpg"))
              if not exclude or p.parent.name not in exclude]
    if not photos:
        raise EdgefaceError(f"no <Name>/<image>.jpg files in {lfw_dir}")
    return photos


def background(rng: np.random.Generator, sources: Sequence[Path], size: tuple[int, int]) -> np.ndarray:
    """A blurred mosaic of corner patches from ``sources`` (BGR), ``size`` = (width, height)."""
    w, h = size
    canvas = np.zeros((h, w, 3), np.uint8)
    tile = int(rng.integers(160, 360))
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            src = read_image(sources[int(rng.integers(len(sources)))])[..., ::-1]
            sh, sw = src.shape[:2]
            corner = int(rng.integers(4))
            side = max(8, min(sh, sw) // 4)
            y0 = 0 if corner < 2 else sh - side
            x0 = 0 if corner % 2 == 0 else sw - side
            patch = cv2.resize(src[y0 : y0 + side, x0 : x0 + side], (tile, tile), interpolation=cv2.INTER_LINEAR)
            canvas[y : y + tile, x : x + tile] = patch[: h - y, : w - x]
    sigma = float(rng.uniform(2.0, 6.0))
    return cv2.GaussianBlur(canvas, (0, 0), sigma)


def head_region(photo: FacePhoto) -> tuple[np.ndarray, np.ndarray]:
    """The photo's head region (BGR) and the face box inside it."""
    image = read_image(photo.path)[..., ::-1]
    x0, y0, x1, y1 = photo.box
    cx, cy, fw, fh = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    hw, hh = fw * HEAD_MARGIN / 2, fh * HEAD_MARGIN / 2
    image = cv2.copyMakeBorder(image, 64, 64, 64, 64, cv2.BORDER_REPLICATE)  # heads near the photo's edge
    rx0, ry0 = round(cx - hw) + 64, round(cy - hh) + 64
    rx1, ry1 = round(cx + hw) + 64, round(cy + hh) + 64
    region = np.ascontiguousarray(image[ry0:ry1, rx0:rx1])
    box = np.array([x0 + 64 - rx0, y0 + 64 - ry0, x1 + 64 - rx0, y1 + 64 - ry0], np.float32)
    return region, box


def paste(canvas: np.ndarray, region: np.ndarray, face_box: np.ndarray, width: float, x: float, y: float,
          rng: np.random.Generator | None = None) -> np.ndarray:
    """Paste a head region so its face is ``width`` px wide with the face box's top-left at (x, y); return the box.

    The region's edge is an elliptical feathered mask, so no rectangle edge is left for a detector to latch onto.
    """
    scale = width / float(face_box[2] - face_box[0])
    rh, rw = region.shape[:2]
    nw, nh = max(2, round(rw * scale)), max(2, round(rh * scale))
    if rng is not None:
        sigma = float(rng.uniform(0.0, 1.5))  # focus / motion blur, in source pixels
        if sigma > 0.3:
            region = cv2.GaussianBlur(region, (0, 0), sigma)
        region = np.clip(region.astype(np.float32) * float(rng.uniform(0.6, 1.3)), 0, 255).astype(np.uint8)
    small = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    mask = np.zeros((nh, nw), np.float32)
    cv2.ellipse(mask, (nw // 2, nh // 2), (max(1, int(nw * 0.46)), max(1, int(nh * 0.48))), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, 0.04 * nw))[..., None]
    left, top = round(x - face_box[0] * scale), round(y - face_box[1] * scale)
    h, w = canvas.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, left), max(0, top), min(w, left + nw), min(h, top + nh)
    if cx1 > cx0 and cy1 > cy0:
        part = small[cy0 - top : cy1 - top, cx0 - left : cx1 - left].astype(np.float32)
        alpha = mask[cy0 - top : cy1 - top, cx0 - left : cx1 - left]
        target = canvas[cy0:cy1, cx0:cx1].astype(np.float32)
        canvas[cy0:cy1, cx0:cx1] = (alpha * part + (1 - alpha) * target).astype(np.uint8)
    return (face_box * scale + np.array([left, top, left, top])).astype(np.float32)


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Frame-wide lighting, sometimes grey, sensor noise and a JPEG round trip."""
    x = image.astype(np.float32) / 255.0
    x = x ** float(rng.uniform(0.7, 1.5))  # gamma: harsh or flat light
    w = x.shape[1]
    ramp = np.linspace(float(rng.uniform(0.55, 1.0)), float(rng.uniform(0.85, 1.2)), w, dtype=np.float32)
    x = x * (ramp[None, :, None] if rng.random() < 0.5 else ramp[::-1][None, :, None])  # light from one side
    if rng.random() < 0.15:  # IR / night camera
        x = np.repeat(x.mean(axis=2, keepdims=True), 3, axis=2)
    x = x * 255.0 + rng.normal(0.0, float(rng.uniform(1.0, 6.0)), x.shape).astype(np.float32)
    out = np.clip(x, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 95))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else out


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def free_spot(rng: np.random.Generator, taken: list[np.ndarray], width: float, size: tuple[int, int],
              tries: int = 60) -> tuple[float, float] | None:
    """Top-left of a face box ``width`` wide whose head region overlaps no earlier one."""
    w, h = size
    fh = width * 1.18
    for _ in range(tries):
        x = float(rng.uniform(0.3 * width, w - 1.3 * width))
        y = float(rng.uniform(0.3 * fh, h - 1.3 * fh))
        head = np.array([x - 0.3 * width, y - 0.3 * fh, x + 1.3 * width, y + 1.3 * fh])
        if all(head[2] < t[0] or head[0] > t[2] or head[3] < t[1] or head[1] > t[3] for t in taken):
            taken.append(head)
            return x, y
    return None


def make_scene(rng: np.random.Generator, photos: Sequence[FacePhoto], backgrounds: Sequence[Path],
               size: tuple[int, int] = (1920, 1080), faces: int = 8,
               width_range: tuple[float, float] = (24.0, 200.0), widths: Sequence[float] | None = None,
               clean: bool = False) -> Scene:
    """One scene: ``faces`` people (or one per entry of ``widths``) on a fresh background."""
    if not photos or not backgrounds:
        raise EdgefaceError("a scene needs face photos and background photos")
    canvas = background(rng, backgrounds, size)
    wanted = list(widths) if widths is not None else [log_uniform(rng, *width_range) for _ in range(faces)]
    taken: list[np.ndarray] = []
    boxes, who = [], []
    for width in sorted(wanted, reverse=True):  # big heads first: they are the hardest to fit
        spot = free_spot(rng, taken, width, size)
        if spot is None:
            continue
        photo = photos[int(rng.integers(len(photos)))]
        region, face_box = head_region(photo)
        boxes.append(paste(canvas, region, face_box, width, *spot, rng=None if clean else rng))
        who.append(photo.identity)
    image = canvas if clean else degrade(canvas, rng)
    return Scene(image, np.array(boxes, np.float32).reshape(-1, 4), who)


def walking_video(rng: np.random.Generator, photos: Sequence[FacePhoto], backgrounds: Sequence[Path],
                  frames: int = 150, people: int = 6, size: tuple[int, int] = (1920, 1080),
                  width_range: tuple[float, float] = (40.0, 120.0)) -> Iterator[Scene]:
    """People walking toward the camera: each face grows across ``width_range`` while drifting sideways."""
    w, h = size
    base = background(rng, backgrounds, size)
    walkers = []
    for k in range(people):
        region, face_box = head_region(photos[int(rng.integers(len(photos)))])
        start = float(rng.uniform(*width_range))
        walkers.append({
            "region": region, "box": face_box, "identity": "",
            "w0": start, "w1": float(np.clip(start * rng.uniform(1.2, 2.0), *width_range)),
            "x": (k + 0.5) * w / people + float(rng.uniform(-60, 60)), "y": float(rng.uniform(0.25 * h, 0.6 * h)),
            "vx": float(rng.uniform(-1.5, 1.5)), "vy": float(rng.uniform(0.2, 1.2)),
        })
    light = float(rng.uniform(0.8, 1.1))
    for t in range(frames):
        canvas = base.copy()
        boxes = []
        for p in walkers:
            width = p["w0"] + (p["w1"] - p["w0"]) * t / max(1, frames - 1)
            boxes.append(paste(canvas, p["region"], p["box"], width, p["x"] + p["vx"] * t - width / 2,
                               p["y"] + p["vy"] * t))
        noisy = np.clip(canvas.astype(np.float32) * light + rng.normal(0, 2.0, canvas.shape), 0, 255)
        yield Scene(noisy.astype(np.uint8), np.array(boxes, np.float32), [""] * len(boxes))


def match(truth: np.ndarray, found: np.ndarray, scores: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Which true faces were found, and how many detections are false.

    A detection finds a true face when its centre lies inside the true box and its width is within a factor of 2 of
    the true width: detectors draw boxes differently (dlib's HOG box is tight, YuNet's tall), so an IoU threshold
    would score box conventions, not detection. Each true face takes at most one detection, best score first.
    """
    hit = np.zeros(len(truth), bool)
    if len(found) == 0:
        return hit, 0
    order = np.argsort(-scores) if scores is not None else np.arange(len(found))
    false = 0
    for i in order:
        x0, y0, x1, y1 = found[i]
        cx, cy, fw = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0
        ok = ((truth[:, 0] <= cx) & (cx <= truth[:, 2]) & (truth[:, 1] <= cy) & (cy <= truth[:, 3])
              & (fw >= 0.5 * (truth[:, 2] - truth[:, 0])) & (fw <= 2.0 * (truth[:, 2] - truth[:, 0])) & ~hit)
        if ok.any():
            hit[int(np.flatnonzero(ok)[0])] = True
        else:
            false += 1
    return hit, false


def bucket_of(width: float) -> str:
    for low, high in FACE_BUCKETS:
        if low <= width < high:
            return f"{low}-{high}" if high < 10_000 else f"{low}+"
    return f"<{FACE_BUCKETS[0][0]}"
