"""Strangers who share a camera: how many impostors a model lets through at its threshold when every face is seen
through the same lens, light and background, as at one door.

LFW's impostor pairs come from different photos, cameras and years; a door camera's strangers share everything with
the enrolled people but their faces, and look more alike (issue #40: ORL, one setting, lets through 3.5x the stored
threshold's promise; a shared harsh camera 20-30x). ``edgeface eval --same-setting DIR`` reports it beside LFW's, on
a folder of ``<person>/<photos>`` taken in one setting: the user's own camera's photos are the real test.
``SHARED_CAMERAS`` render photos from many settings as if through one camera, for benchmarks on public data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.evaluate.metrics import all_pairs_thresholds
from edgeface.vision.conditions import grey, jpeg, rng_for, shading
from edgeface.vision.detector_options import DEFAULT_DETECT_SIZE, DEFAULT_DETECTOR
from edgeface.vision.embed import Embedder
from edgeface.vision.embedding_cache import embed_paths
from edgeface.vision.image import is_image


def ir_night(image: np.ndarray, key: str) -> np.ndarray:
    """A night camera: grey, under-exposed to a third, sensor noise (sigma 6 grey levels), soft, JPEG 60."""
    dark = grey(image).astype(np.float32) * 0.35
    noisy = dark + rng_for(key, "ir-night").normal(0, 6, dark.shape[:2])[..., None]
    soft = cv2.GaussianBlur(np.clip(noisy, 0, 255).astype(np.uint8), (0, 0), 0.8)
    return jpeg(soft, 60)


def side_light(image: np.ndarray, key: str) -> np.ndarray:
    """A window to the camera's left: every face lit from the same side, a hard shadow edge down the middle
    (15 % to 120 %), JPEG 70."""
    h, w = image.shape[:2]
    return jpeg(shading(image, (w / 2, h / 2), 0.5 * min(h, w), 0.0, 0.15, 1.2, hard=True), 70)


def hallway(image: np.ndarray, key: str) -> np.ndarray:
    """A dim hallway with a ceiling light: warm cast, light from above (top 110 %, chin 35 %), half the detail
    (half size and back), JPEG 50."""
    h, w = image.shape[:2]
    lit = shading(image, (w / 2, h / 2), 0.6 * min(h, w), np.pi / 2, 1.1, 0.35, hard=False).astype(np.float32)
    warm = np.clip(lit * np.array([1.08, 0.97, 0.8], np.float32), 0, 255).astype(np.uint8)
    small = cv2.resize(warm, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return jpeg(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), 50)


SHARED_CAMERAS: dict[str, Callable[[np.ndarray, str], np.ndarray] | None] = {
    "plain": None, "ir-night": ir_night, "side-light": side_light, "hallway": hallway}


def identity_photos(root: str | Path) -> tuple[list[Path], np.ndarray]:
    """``root/<person>/<photos>``: every photo and its person's index; at least two people, one with two photos."""
    root = Path(root)
    if not root.is_dir():
        raise EdgefaceError(f"--same-setting folder not found: {root}")
    people = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    paths, ids = [], []
    for k, person in enumerate(people):
        photos = sorted(f for f in person.iterdir() if f.is_file() and is_image(f))
        paths += photos
        ids += [k] * len(photos)
    counts = np.bincount(ids) if ids else np.zeros(0, int)
    if (counts > 0).sum() < 2 or not (counts > 1).any():
        raise EdgefaceError(f"{root} needs <person>/<photos> folders of at least two people, one with two photos or "
                            "more: same-setting pairs are made of them")
    return paths, np.array(ids)


def same_setting_report(embedder: Embedder, root: str | Path, threshold: float, workers: int = 2,
                        detector: str = DEFAULT_DETECTOR, detect_size: int = DEFAULT_DETECT_SIZE,
                        camera: str = "plain") -> dict:
    """Every pair of the folder's photos: the FAR and TAR at ``threshold`` (what ``recognize`` would let through
    there), and the threshold that holds FAR 1e-3 on these strangers with the TAR it leaves."""
    if camera not in SHARED_CAMERAS:
        raise EdgefaceError(f"unknown camera {camera!r}; choose one of {', '.join(SHARED_CAMERAS)}")
    paths, ids = identity_photos(root)
    vectors, fell_back = embed_paths(paths, embedder, workers=workers, group=f"same-setting|{Path(root)}|{camera}",
                                     description="same-setting photos", detector=detector, detect_size=detect_size,
                                     transform=SHARED_CAMERAS[camera])
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    pairs = all_pairs_thresholds(vectors, ids, fars=(1e-3,), at=threshold)
    return {"dir": str(root), "camera": camera, "people": len(np.unique(ids)), "images": len(paths),
            "no_face_found": int(sum(fell_back)), "impostor_pairs": pairs["impostor_pairs"],
            "genuine_pairs": pairs["genuine_pairs"], "model_threshold": threshold,
            "far_at_model_threshold": pairs["far_at_model_threshold"],
            "tar_at_model_threshold": pairs["tar_at_model_threshold"],
            "threshold_at_far_1e-3": pairs["threshold_at_far"]["0.001"],
            "tar_at_far_1e-3": pairs["tar_at_far"]["0.001"]}
