"""Why the int8 default is ~0.35 of its float32 file and not 1/4: where the bytes go, and what can be removed.

    python benchmarks/archive/int8_size.py

For the shipped int8 and float32 files: `edgeface info --bytes` (weights, biases, quantization parameters, names,
metadata, flatbuffer tables). Then three stripped copies of the int8 file, each checked for identical outputs on
real faces and timed side by side with the original (`edgeface bench`, one thread):
  * tensor names removed (the runtime never reads them; edgeface's per-op tools print them);
  * the biases' per-channel quantization parameters removed (the reference kernels derive the bias scale from the
    input and weight scales);
  * both.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import CELEBA, edgeface_json, save

from edgeface.default_model import ASSETS
from edgeface.runtime.graph import op_kind, read_graph
from edgeface.tflite_metadata import pack
from edgeface.vision.detect import FaceFinder
from edgeface.vision.embed import TFLiteEmbedder
from edgeface.vision.image import read_image

CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def stripped(data: bytes, names: bool, bias_params: bool) -> bytes:
    model = read_graph(data)
    graph = model.subgraphs[0]
    if bias_params:
        for op in graph.operators:
            if op_kind(model, op) in CONVS and len(op.inputs) > 2 and op.inputs[2] >= 0:
                graph.tensors[op.inputs[2]].quantization = None
    if names:
        for tensor in graph.tensors:
            tensor.name = b""
    return pack(model)


def main() -> None:
    started = time.time()
    int8, float32 = ASSETS / "edgeface-default.tflite", ASSETS / "edgeface-default-float32.tflite"
    breakdown = {p.name: edgeface_json("info", str(p), "--bytes") for p in (int8, float32)}
    finder = FaceFinder()
    faces = [f for f in (finder.aligned_main(read_image(p)) for p in sorted((CELEBA / "images").glob("*.jpg"))[:100])
             if f is not None]
    reference = TFLiteEmbedder(int8).embed(np.stack(faces))
    variants = {"names": (True, False), "bias-quantization": (False, True), "both": (True, True)}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(int8)]
        for name, (names, bias) in variants.items():
            path = Path(tmp) / f"int8-strip-{name}.tflite"
            path.write_bytes(stripped(int8.read_bytes(), names, bias))
            got = TFLiteEmbedder(path).embed(np.stack(faces))
            rows[name] = {"size_bytes": path.stat().st_size, "ratio_to_float32": path.stat().st_size /
                          float32.stat().st_size, "max_abs_diff": float(np.abs(got - reference).max())}
            paths.append(str(path))
        bench = edgeface_json("bench", *paths, str(float32), "--threads", "1", "--runs", "300")
    timing = {Path(r["model"]).name: r["p50_ms"] for r in bench}
    rows["original"] = {"size_bytes": int8.stat().st_size, "ratio_to_float32": int8.stat().st_size /
                        float32.stat().st_size, "max_abs_diff": 0.0}
    for name, row in rows.items():
        print(f"{name:18s} {row['size_bytes']:9,d} B  {row['ratio_to_float32']:.3f} of float32  "
              f"max diff {row['max_abs_diff']:.4f}")
    save("int8_size.json", {"faces": len(faces), "breakdown": breakdown, "variants": rows, "p50_ms": timing}, started)


if __name__ == "__main__":
    main()
