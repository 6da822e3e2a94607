"""Property and fuzz tests: the decoder, the aligner, the pairs parser and the gallery never misbehave."""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from edgeface.errors import EdgefaceError
from edgeface.evaluate.lfw import parse_pairs
from edgeface.recognize.gallery import Gallery
from edgeface.vision.align import align
from edgeface.vision.embed import l2_normalise
from edgeface.vision.image import decode_image

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(h=st.integers(1, 300), w=st.integers(1, 300), channels=st.sampled_from([1, 3, 4]),
       dtype=st.sampled_from([np.uint8, np.uint16]), ext=st.sampled_from([".png", ".jpg", ".bmp", ".tiff"]),
       seed=st.integers(0, 1000))
def test_decoder_returns_rgb_uint8_for_any_encodable_image(h, w, channels, dtype, ext, seed):
    if dtype == np.uint16 and ext in (".jpg", ".bmp"):
        dtype = np.uint8
    if channels == 4 and ext == ".jpg":
        channels = 3
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    image = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    ok, buf = cv2.imencode(ext, image)
    if not ok:
        return
    out = decode_image(buf.tobytes(), "x" + ext)
    assert out.dtype == np.uint8 and out.shape == (h, w, 3)


@FAST
@given(data=st.binary(max_size=2000))
def test_decoder_rejects_arbitrary_bytes_cleanly(data):
    try:
        out = decode_image(data, "fuzz")
    except EdgefaceError:
        return
    assert out.ndim == 3 and out.shape[2] == 3


finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)


@FAST
@given(points=st.lists(st.tuples(finite, finite), min_size=4, max_size=4), h=st.integers(1, 200),
       w=st.integers(1, 200))
def test_aligner_gives_a_crop_or_a_clear_error_for_any_landmarks(points, h, w):
    image = np.zeros((h, w, 3), np.uint8)
    try:
        out = align(image, np.array(points, np.float32))
    except EdgefaceError:
        return
    assert out.shape == (112, 112, 3) and out.dtype == np.uint8


@FAST
@given(lines=st.lists(st.lists(st.text(alphabet="ab1209 _-", min_size=1, max_size=6), min_size=0, max_size=5),
                      max_size=12))
def test_pairs_parser_never_crashes(lines):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.txt"
        path.write_text("\n".join(" ".join(parts) for parts in lines))
        try:
            pairs = parse_pairs(path)
        except EdgefaceError:
            return
        assert len(pairs.left) == len(pairs.right) == len(pairs.same) == len(pairs.fold)


names = st.sampled_from(["ann", "bob", "cé", "d-4", "eve o'neil"])


class GalleryMachine(RuleBasedStateMachine):
    """Random enrol/remove/rename sequences keep the gallery equal to a plain dict model of it."""

    people = Bundle("people")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.gallery = Gallery(Path(self.tmp.name) / "g.sqlite", "e" * 64, 8)
        self.model: dict[str, int] = {}
        self.rng = np.random.default_rng(0)

    @rule(name=names, n=st.integers(1, 3))
    def enrol(self, name, n):
        self.gallery.add(name, l2_normalise(self.rng.normal(size=(n, 8))))
        self.model[name] = self.model.get(name, 0) + n

    @rule(name=names)
    def remove(self, name):
        try:
            self.gallery.remove(name)
        except EdgefaceError:
            assert name not in self.model
            return
        del self.model[name]

    @rule(old=names, new=names)
    def rename(self, old, new):
        try:
            self.gallery.rename(old, new)
        except EdgefaceError:
            assert old not in self.model or new in self.model
            return
        self.model[new] = self.model.pop(old)

    @invariant()
    def matches_model(self):
        assert {p["name"]: p["templates"] for p in self.gallery.people()} == self.model
        emb, _, people = self.gallery.templates()
        assert len(emb) == sum(self.model.values()) and sorted(people) == sorted(self.model)

    def teardown(self):
        assert self.gallery.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        self.gallery.close()
        self.tmp.cleanup()


TestGalleryMachine = GalleryMachine.TestCase
TestGalleryMachine.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)


@given(faces=st.lists(st.tuples(st.integers(0, 1240), st.integers(0, 680), st.integers(24, 200),
                                st.sampled_from(["obama", "lin_manuel", "unknown", "turned away", "kit harington"])),
                      min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_labels_never_overlap_and_stay_in_the_frame(faces):
    """Any crowd of up to eight faces in a 720p frame: every label inside the frame, no two overlapping (the live
    view once showed "ur known" where two labels met)."""
    from edgeface.recognize.loop import label_layout
    from edgeface.recognize.results import FaceRecord

    records = [FaceRecord((float(x), float(y), float(min(x + s, 1279)), float(min(y + s, 719))), (), 0.9,
                          name=None if name in ("unknown", "turned away") else name, score=0.95,
                          reason="turned away" if name == "turned away" else None) for x, y, s, name in faces]
    rects = [rect for _, _, rect in label_layout(records, 1280, 720)]
    assert all(x0 >= 0 and y0 >= 0 and x1 <= 1280 and y1 <= 720 for x0, y0, x1, y1 in rects), rects
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)


@given(threshold=st.floats(0.05, 0.99), a=st.floats(-1, 1), b=st.floats(-1, 1))
def test_client_confidence_is_monotone_and_puts_the_threshold_at_060(threshold, a, b):
    """The NVR clients' scale: 0-1, rising with the cosine, the model's threshold at 0.60 (a client left at its default
    match confidence takes exactly what edgeface names)."""
    from edgeface.recognize.confidence import MATCH_CONFIDENCE, confidence

    assert confidence(threshold, threshold) == MATCH_CONFIDENCE and confidence(None, threshold) == 0.0
    low, high = sorted((a, b))
    assert 0.0 <= confidence(low, threshold) <= confidence(high, threshold) <= 1.0
    if abs(a - threshold) > 1e-3:  # (the scale is rounded to 4 decimals, as clients read it)
        assert (confidence(a, threshold) > MATCH_CONFIDENCE) == (a > threshold)
