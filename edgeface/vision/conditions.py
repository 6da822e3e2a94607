"""Image conditions a door camera meets and LFW does not: grey (IR) frames, one-sided light, small faces, heavy JPEG,
blur and partial occlusion. numpy + OpenCV only, so the device half can evaluate under them.

The same functions make the training views (``edgeface data views``) and the evaluation conditions
(``edgeface eval --condition``): a model is trained on the damage it is judged on, and every random choice is
seeded from the image's own key, so two models are scored on identical pixels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.vision.condition_names import CONDITIONS


def rng_for(key: str, salt: str = "") -> np.random.Generator:
    """A generator seeded by a string, so a condition draws the same numbers for an image in every run."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{salt}|{key}".encode()).digest()[:8], "little"))


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def _unit_direction(angle: float) -> tuple[float, float]:
    return float(np.cos(angle)), float(np.sin(angle))


def shading(image: np.ndarray, centre: tuple[float, float], width: float, angle: float, dark: float,
            bright: float, hard: bool) -> np.ndarray:
    """Multiply by a light field across the face along ``angle``: a smooth ramp from ``dark`` to ``bright`` over the
    face width, or (``hard``) a shadow edge through the centre, softened over ~6 % of the face."""
    h, w = image.shape[:2]
    dx, dy = _unit_direction(angle)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = ((xs - centre[0]) * dx + (ys - centre[1]) * dy) / max(width, 1.0)  # -0.5..0.5 across the face
    ramp = 0.5 * (1.0 + np.tanh(t / 0.06)) if hard else np.clip(t + 0.5, 0.0, 1.0)  # tanh: the logistic, no overflow
    gain = dark + (bright - dark) * ramp
    return np.clip(image.astype(np.float32) * gain[..., None], 0, 255).astype(np.uint8)


def relight(image: np.ndarray, rng: np.random.Generator, centre: tuple[float, float] | None = None,
            width: float | None = None) -> np.ndarray:
    """The evaluation's strong one-sided light: left or right side at 20 %, the other at 130 %, a smooth ramp."""
    h, w = image.shape[:2]
    centre = centre or (w / 2, h / 2)
    width = width or 0.5 * min(h, w)
    angle = 0.0 if rng.random() < 0.5 else np.pi
    return shading(image, centre, width, angle, 0.2, 1.3, hard=False)


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """Down by ``factor`` (< 1) with area averaging, then back up: the detail of a face that small."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise EdgefaceError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def occlude(image: np.ndarray, rng: np.random.Generator, box: np.ndarray) -> np.ndarray:
    """A flat patch over the lower face (mask, scarf), one side (a hand, a door frame) or the eyes (sunglasses)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    kind = rng.integers(3)
    if kind == 0:
        rect = (x0, y0 + bh * rng.uniform(0.55, 0.7), x1, y1)
    elif kind == 1:
        cut = bw * rng.uniform(0.25, 0.4)
        rect = (x0, y0, x0 + cut, y1) if rng.random() < 0.5 else (x1 - cut, y0, x1, y1)
    else:
        rect = (x0, y0 + bh * 0.25, x1, y0 + bh * rng.uniform(0.42, 0.5))
    out = image.copy()
    a, b, c, d = (round(v) for v in rect)
    out[max(0, b):max(0, d), max(0, a):max(0, c)] = rng.integers(0, 256, 3, dtype=np.uint8) if kind != 2 else 10
    return out


def colour_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White balance, brightness and contrast of another camera."""
    gains = rng.uniform(0.8, 1.2, 3).astype(np.float32)
    x = image.astype(np.float32) * gains
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.6, 1.3) + mean + rng.uniform(-30, 30)
    return np.clip(x, 0, 255).astype(np.uint8)


def eye_distance(keypoints: np.ndarray) -> float:
    """Pixels between the eye centres (the first two keypoints of both detectors)."""
    return float(np.linalg.norm(np.asarray(keypoints[1], np.float32) - np.asarray(keypoints[0], np.float32)))


def random_view(image: np.ndarray, box: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator) -> tuple[
        np.ndarray, list[str]]:
    """One training view: one to three of the conditions above, drawn at random, with their names.

    Geometric jitter (flip, shift, scale) is left to the online augmentation: it does not change who the teacher
    sees, while these change the pixels a teacher must look through.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    centre, width = ((x0 + x1) / 2, (y0 + y1) / 2), x1 - x0
    steps: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
        ("colour", lambda im: colour_jitter(im, rng)),
        ("grey", grey),
        ("shade", lambda im: shading(im, centre, width, rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.5),
                                     rng.uniform(1.0, 1.4), hard=False)),
        ("shadow", lambda im: shading(im, centre, width, rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.45),
                                      1.0, hard=True)),
        ("blur", lambda im: blur(im, rng.uniform(0.8, 2.0))),
        ("lowres", lambda im: rescale(im, min(1.0, rng.uniform(24, 40) / max(eye_distance(keypoints), 1.0)))),
        ("jpeg", lambda im: jpeg(im, int(rng.integers(20, 91)))),
        ("occlude", lambda im: occlude(im, rng, box)),
    ]
    weights = np.array([0.35, 0.3, 0.3, 0.2, 0.15, 0.3, 0.3, 0.15])
    count = int(rng.integers(1, 4))
    chosen = sorted(rng.choice(len(steps), size=count, replace=False, p=weights / weights.sum()))
    names = []
    for k in chosen:
        name, apply = steps[k]
        image = apply(image)
        names.append(name)
    return image, names


def cast_shadow(image: np.ndarray, key: str) -> np.ndarray:
    """Hard light from one side (drawn per image): a cast shadow edge across the face at a random tilt, the shadowed
    side at 8 %, the lit side at 140 % (highlights clip), JPEG 70."""
    rng = rng_for(key, "shadow")
    h, w = image.shape[:2]
    angle = (0.0 if rng.random() < 0.5 else np.pi) + rng.uniform(-0.5, 0.5)
    centre = (w / 2 + rng.uniform(-0.08, 0.08) * w, h / 2)
    return jpeg(shading(image, centre, 0.5 * min(h, w), angle, 0.08, 1.4, hard=True), 70)


def dim(image: np.ndarray, rng: np.random.Generator, light: float, gain: float, quality: int) -> np.ndarray:
    """A dim room: ``light`` of the light reaches the sensor (shot noise ~ sqrt of the signal, read noise 2 levels,
    the dark frame's 8-bit steps), the camera's gain multiplies it (with the noise), then JPEG at ``quality``."""
    signal = image.astype(np.float32) * light
    noisy = signal + rng.normal(0, 1, signal.shape[:2])[..., None] * np.sqrt(signal + 4.0)
    dark = np.clip(np.round(noisy), 0, 255)  # what the sensor's 8 bits hold before the gain
    return jpeg(np.clip(dark * gain, 0, 255).astype(np.uint8), quality)


def low_exposure(image: np.ndarray, key: str) -> np.ndarray:
    """A dim room at night: a tenth of the light reaches the sensor, and the camera's gain, at its limit, brings it
    only to 40 % (x4, with the noise); JPEG 60."""
    return dim(image, rng_for(key, "dark"), 0.1, 4.0, 60)


def infrared(image: np.ndarray, rng: np.random.Generator, weights: tuple[float, float, float], flatten: float,
             noise: float, soften: float, quality: int) -> np.ndarray:
    """A night camera's IR illuminator: one grey channel weighted to red (``weights`` of R, G, B; skin reflects
    near-IR: brighter, flatter), contrast lowered by ``flatten`` towards a bright grey, sensor noise, a soft lens."""
    rgb = image.astype(np.float32)
    ir = weights[0] * rgb[..., 0] + weights[1] * rgb[..., 1] + weights[2] * rgb[..., 2]
    flat = (1.0 - flatten) * ir + flatten * 170.0
    noisy = flat + rng.normal(0, noise, flat.shape)
    soft = cv2.GaussianBlur(np.clip(noisy, 0, 255).astype(np.uint8), (0, 0), soften)
    return jpeg(cv2.cvtColor(soft, cv2.COLOR_GRAY2RGB), quality)


def near_infrared(image: np.ndarray, key: str) -> np.ndarray:
    """The evaluation's night camera: 60 % red, contrast 65 % towards grey 170, noise sigma 5, blur 1, JPEG 60."""
    return infrared(image, rng_for(key, "nir"), (0.6, 0.3, 0.1), 0.35, 5.0, 1.0, 60)


def random_harsh(image: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """One harsh training view: a hard cast shadow, a dim room at the gain limit, or a night camera's IR look, each
    drawn from a family around the evaluation condition of that name.

    Why a family and not the condition itself: a student trained on the exact pixels it is judged on would look robust
    on ``eval --condition`` and learn nothing about real light; the evaluation's parameters are one point inside each
    range, so the harsh conditions still measure something, but the real-light photos decide.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    centre, width = ((x0 + x1) / 2 + rng.uniform(-0.1, 0.1) * (x1 - x0), (y0 + y1) / 2), x1 - x0
    kind = ("shadow", "dark", "nir")[int(rng.integers(3))]
    if kind == "shadow":
        out = shading(image, centre, width, rng.uniform(0, 2 * np.pi), rng.uniform(0.04, 0.3), rng.uniform(1.0, 1.6),
                      hard=True)
        return jpeg(out, int(rng.integers(50, 91))), [kind]
    if kind == "dark":
        return dim(image, rng, rng.uniform(0.06, 0.25), rng.uniform(2.0, 5.0), int(rng.integers(40, 81))), [kind]
    red = rng.uniform(0.45, 0.75)
    weights = (red, 0.75 * (1.0 - red), 0.25 * (1.0 - red))
    return infrared(image, rng, weights, rng.uniform(0.2, 0.5), rng.uniform(2.0, 8.0), rng.uniform(0.5, 1.5),
                    int(rng.integers(40, 81))), [kind]


HARSH: dict[str, Callable[[np.ndarray, str], np.ndarray]] = {
    "shadow": cast_shadow, "dark": low_exposure, "nir": near_infrared}


def condition_transform(name: str, detector: str | None = None) -> Callable[[np.ndarray, str], np.ndarray] | None:
    """``(image, key) -> image`` for an evaluation condition, None for ``plain``.

    ``lowres32`` needs the face's eye distance: it is measured by the detector on the clean image, so the face is
    scaled to exactly 32 px between the eyes whatever the photo's framing.
    """
    if name not in CONDITIONS:
        raise EdgefaceError(f"unknown condition {name!r}; choose one of {', '.join(CONDITIONS)}")
    if name == "plain":
        return None
    if name == "grey":
        return lambda image, key: grey(image)
    if name == "relight":
        return lambda image, key: relight(image, rng_for(key, name))
    if name == "jpeg20":
        return lambda image, key: jpeg(image, 20)
    if name in HARSH:
        return HARSH[name]
    import threading

    from edgeface.vision.detect import FaceFinder, main_face
    from edgeface.vision.detector_options import DEFAULT_DETECTOR

    local = threading.local()

    def lowres(image: np.ndarray, key: str) -> np.ndarray:
        if not hasattr(local, "finder"):
            local.finder = FaceFinder(detector or DEFAULT_DETECTOR)
        faces = local.finder.find(image)
        if not faces:
            return image  # nothing to measure: left as is (and the detector's failure is counted downstream)
        eyes = eye_distance(main_face(faces, image.shape).keypoints)
        return rescale(image, 32.0 / eyes) if eyes > 32 else image

    return lowres
