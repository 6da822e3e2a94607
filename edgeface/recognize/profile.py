"""``edgeface bench --pipeline``: the whole per-frame path timed stage by stage, decode included.

Frames are decoded synchronously here (the live loop decodes in a capture thread) so the decode cost is
visible. Matching runs against a temporary gallery of 1,000 random templates, a realistic office-sized load.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.recognize.capture import source_kind
from edgeface.recognize.config import PipelineConfig
from edgeface.recognize.gallery import Gallery
from edgeface.vision.embed import embedder_identity, l2_normalise
from edgeface.vision.image import is_image, read_image


def decoded_frames(source: str, limit: int):
    kind = source_kind(source)
    if kind in ("folder", "image"):
        paths = [Path(source)] if kind == "image" else sorted(
            p for p in Path(source).iterdir() if p.is_file() and is_image(p))
        for path in paths[: limit or None]:
            t = time.perf_counter()
            frame = np.ascontiguousarray(read_image(path)[..., ::-1])
            yield time.perf_counter() - t, frame
        return
    if kind != "video":
        raise EdgefaceError("--pipeline takes a video file, an image or a folder of images")
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise EdgefaceError(f"cannot open video file {source}")
    try:
        n = 0
        while not limit or n < limit:
            t = time.perf_counter()
            ok, frame = cap.read()
            if not ok:
                return
            n += 1
            yield time.perf_counter() - t, frame
    finally:
        cap.release()


def profile_pipeline(source: str, config: PipelineConfig, max_frames: int = 0, gallery_size: int = 1000) -> dict:
    """The frame recogniser ``recognize`` runs (``Pipeline.frames``) against a gallery of ``gallery_size`` random
    templates, every stage timed. The threshold does not change the time, so unless one is given the loop runs at
    1.0 (no name is shown) and a model without a stored threshold times like any other."""
    from edgeface.recognize.pipeline import Pipeline

    loaded = Pipeline(config if config.threshold is not None else config.but(threshold=1.0))
    embedder = loaded.embedder
    with tempfile.TemporaryDirectory() as tmp:
        gallery = Gallery(Path(tmp) / "g.sqlite", embedder_identity(embedder), embedder.size)
        rng = np.random.default_rng(0)
        for i in range(gallery_size // 2):
            gallery.add(f"person {i}", l2_normalise(rng.normal(size=(2, embedder.size))))
        recognizer = loaded.frames(gallery)
        frames = faces = 0
        started = time.perf_counter()
        for seconds, frame in decoded_frames(source, max_frames):
            recognizer.timings.add("decode", seconds)
            faces += len(recognizer.process(frame))
            frames += 1
        wall = time.perf_counter() - started
        gallery.close()
    if not frames:
        raise EdgefaceError(f"no frames could be read from {source}")
    return {"source": source, "model": embedder.name, "detector": recognizer.detector.id,
            "threads": config.threads, "detect_every": config.detect_every, "frames": frames, "faces": faces,
            "fps": round(frames / wall, 2), "gallery_templates": gallery_size,
            "stages": recognizer.timings.summary()}
