"""The rows of the bad-input matrix not covered next to their features: each gives one clear line, a non-zero
exit, no traceback, and leaves existing files untouched."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from conftest import LFW, MEDIA, PEER_FLAGS, PEER_FLOAT, assert_one_line_error, needs_shared, run_cli, small_pairs

from edgeface.errors import EdgefaceError
from edgeface.vision.blazeface import model_dir
from edgeface.vision.image import decode_image, read_image


def test_zero_pixel_and_directory_images(tmp_path):
    import cv2

    _, buf = cv2.imencode(".png", np.zeros((3, 3, 3), np.uint8))
    header = bytearray(buf.tobytes())
    header[16:24] = (0).to_bytes(4, "big") + (5).to_bytes(4, "big")
    with pytest.raises(EdgefaceError, match="no pixels"):
        decode_image(bytes(header), "zero.png")
    with pytest.raises(EdgefaceError, match="directory"):
        read_image(tmp_path)


def test_cmyk_jpeg_is_converted():
    pil = pytest.importorskip("PIL.Image")
    buf = io.BytesIO()
    pil.new("CMYK", (40, 30), (0, 255, 255, 0)).save(buf, "JPEG")
    out = decode_image(buf.getvalue(), "cmyk.jpg")
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    assert out[..., 0].mean() > 150  # cyan 0, magenta + yellow full: red dominates


@needs_shared
def test_a_model_whose_output_is_not_an_embedding_is_refused(tmp_path):
    pairs = small_pairs(tmp_path / "pairs.txt")
    detector = model_dir() / "face_detection_short_range.tflite"
    assert_one_line_error(run_cli("eval", str(detector), "--lfw-dir", str(LFW), "--pairs", str(pairs)),
                          "not an embedding")


@needs_shared
def test_video_cut_mid_way_ends_cleanly(tmp_path):
    clip = tmp_path / "cut.mp4"
    data = (MEDIA / "short_hamilton_clip.mp4").read_bytes()
    clip.write_bytes(data[: len(data) // 2])
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(MEDIA / "probes" / "obama3.jpg"), "--gallery", str(gallery)).returncode == 0
    result = run_cli("recognize", "--source", str(clip), "--gallery", str(gallery), "--json")
    if result.returncode != 0:  # some demuxers refuse a file without its index: that must still be one line
        assert_one_line_error(result, "cannot open")
        return
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert 0 < summary["frames"] < 275  # what was there is read; the cut-off rest is not


@needs_shared
def test_failed_commands_leave_existing_files_alone(tmp_path):
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(MEDIA / "probes" / "obama3.jpg"), "--gallery", str(gallery)).returncode == 0
    before = gallery.read_bytes()
    assert_one_line_error(run_cli("enroll", "x" * 10_000, str(MEDIA / "probes" / "obama3.jpg"), "--gallery",
                                  str(gallery)), "limit")
    assert_one_line_error(run_cli("enroll", "obama", "--model", str(PEER_FLOAT), *PEER_FLAGS,
                                  str(MEDIA / "probes" / "obama3.jpg"),
                                  "--gallery", str(gallery)), "enrolled with model")
    assert run_cli("gallery", "list", "--gallery", str(gallery), "--json").returncode == 0
    assert gallery.read_bytes()[:100] == before[:100]
    listing = json.loads(run_cli("gallery", "list", "--gallery", str(gallery), "--json").stdout)
    assert [(p["name"], p["templates"]) for p in listing["people"]] == [("obama", 1)]
