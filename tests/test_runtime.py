"""The LiteRT wrapper on real .tflite files: float and quantized I/O, bad files."""

import numpy as np
import pytest
from conftest import PEER_FLOAT, PEER_UINT8, needs_shared

from edgeface.errors import EdgefaceError
from edgeface.runtime.interpreter import Model
from edgeface.vision.blazeface import model_dir


@needs_shared
def test_uint8_model_is_quantized_in_and_dequantized_out():
    from conftest import LFW

    from edgeface.vision.align import align_face
    from edgeface.vision.detect import FaceFinder, main_face
    from edgeface.vision.image import read_image

    finder = FaceFinder()
    faces = []
    for name in ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0001.jpg"):
        image = read_image(LFW / name)
        faces.append(align_face(image, main_face(finder.find(image), image.shape)))
    x = np.stack(faces).astype(np.float32)
    f = Model(PEER_FLOAT)(x)
    q = Model(PEER_UINT8)
    assert q.input.quantized and q.output.quantized
    y = q(x)
    assert y.dtype == np.float32 and y.shape == (2, 128)
    cos = np.sum(f * y, 1) / np.linalg.norm(f, axis=1) / np.linalg.norm(y, axis=1)
    assert (cos > 0.8).all()  # the uint8 peer is lossy (0.86 here), but the same face
    it = q.interpreter  # our dequantization is exactly the tensor's (raw - zero_point) * scale
    it.set_tensor(it.get_input_details()[0]["index"], x[:1].astype(np.uint8))
    it.invoke()
    raw = it.get_tensor(it.get_output_details()[0]["index"]).astype(np.float32)
    assert np.allclose(y[:1], (raw - q.output.zero_point) * q.output.scale)
    assert Model(PEER_FLOAT, xnnpack=False)(x[:1]) == pytest.approx(f[:1], rel=1e-3, abs=1e-3)


def test_detector_model_runs_with_threads():
    m = Model(model_dir() / "face_detection_short_range.tflite", threads=2)
    out = m.invoke(np.zeros((1, 128, 128, 3), np.float32))
    assert {o.shape for o in out} == {(1, 896, 16), (1, 896, 1)}


def test_bad_model_files(tmp_path):
    real = (model_dir() / "face_detection_short_range.tflite").read_bytes()
    cases = {"random.tflite": np.random.default_rng(0).bytes(5000), "empty.tflite": b"",
             "truncated.tflite": real[: len(real) // 2]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(EdgefaceError, match=r"TFLite|cannot load"):
            Model(tmp_path / name)
    with pytest.raises(EdgefaceError, match="not found"):
        Model(tmp_path / "missing.tflite")
    with pytest.raises(EdgefaceError, match="threads"):
        Model(model_dir() / "face_detection_short_range.tflite", threads=0)


def test_info_bytes_accounts_for_the_whole_file():
    import json

    from conftest import run_cli

    from edgeface.default_model import default_model_path

    report = json.loads(run_cli("info", "--bytes", "--json").stdout)["bytes"]
    assert report["total"] == default_model_path().stat().st_size
    named = sum(v for k, v in report.items() if k not in ("total",) and not k.startswith("metadata: "))
    assert named == report["total"]
    # int8 weights are one byte per weight; per-channel quantization parameters are the next largest part
    assert report["weights"] > report["quantization parameters"] > report["biases"] > report["tensor names"]
    assert report["metadata: edgeface_manifest"] > 0
