"""Rebuild ``edgeface/assets/face_detection_yunet_2026may.tflite`` from the vendored YuNet ONNX file.

Two steps, each checked:

1. Cut the 12 output tails (Transpose -> Reshape [-> Sigmoid]) off the ONNX graph and output the last
   convolutions directly (class/objectness through a Sigmoid). The original tails reshape to a fixed number of
   anchors, which would tie the converted model to one input size; without them the network is fully
   convolutional and LiteRT resizes it to any frame (multiples of 32).
2. Convert with onnx2tf (NCHW -> NHWC) and compare every output map with OpenCV's DNN module running the cut
   ONNX graph on a real frame at three sizes.

onnx2tf pulls in its own TensorFlow and onnx stack, so run this in a separate environment:

    python -m venv /tmp/o2t && /tmp/o2t/bin/pip install onnx2tf onnx onnx-graphsurgeon sng4onnx psutil \
        "tensorflow==2.21.*" "tf-keras==2.21.*" ai-edge-litert opencv-python-headless
    /tmp/o2t/bin/python benchmarks/convert_yunet.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).resolve().parents[1] / "edgeface" / "assets"
SOURCE = ASSETS / "face_detection_yunet_2026may.onnx"
TARGET = ASSETS / "face_detection_yunet_2026may.tflite"
OUTPUTS = [f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in (8, 16, 32)]


def cut_tails(source: Path, target: Path) -> None:
    import onnx
    from onnx import helper

    model = onnx.load(str(source))
    producer = {out: node for node in model.graph.node for out in node.output}
    removed, tails, outputs = set(), [], []
    for name in OUTPUTS:
        node = producer[name]
        while node.op_type != "Conv":
            removed.add(node.output[0])
            node = producer[node.input[0]]
        op = "Sigmoid" if name.startswith(("cls", "obj")) else "Identity"
        tails.append(helper.make_node(op, [node.output[0]], [f"{name}_map"], name=f"{name}_out"))
        outputs.append(helper.make_tensor_value_info(f"{name}_map", onnx.TensorProto.FLOAT, [1, None, None, None]))
    nodes = [n for n in model.graph.node if n.output[0] not in removed] + tails
    graph = helper.make_graph(nodes, model.graph.name, list(model.graph.input), outputs,
                              list(model.graph.initializer))
    cut = helper.make_model(graph, opset_imports=model.opset_import, producer_name="edgeface")
    cut.ir_version = model.ir_version
    full = target.with_suffix(".full.onnx")
    onnx.save(cut, str(full))
    onnx.utils.extract_model(str(full), str(target), [i.name for i in model.graph.input], [o.name for o in outputs])
    onnx.checker.check_model(onnx.load(str(target)))


def check(onnx_path: Path, tflite_path: Path) -> float:
    from ai_edge_litert.interpreter import Interpreter

    lfw = ASSETS.parents[1].parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
    photos = sorted(lfw.glob("A*/*.jpg"))[:8]  # real faces, so the score maps are not all near zero
    frame = np.hstack([cv2.imread(str(p)) for p in photos]) if photos else \
        np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    net = cv2.dnn.readNet(str(onnx_path))
    names = net.getUnconnectedOutLayersNames()
    interpreter = Interpreter(str(tflite_path), num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    worst = 0.0
    for w, h in ((640, 384), (320, 320), (960, 544)):
        x = cv2.resize(frame, (w, h)).astype(np.float32)
        interpreter.resize_tensor_input(index, [1, h, w, 3])
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x[None])
        interpreter.invoke()
        got = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
        net.setInput(cv2.dnn.blobFromImage(x))
        for ref in net.forward(names):
            ref = ref.transpose(0, 2, 3, 1)
            worst = max(worst, min(float(np.abs(ref - g).max()) for g in got if g.shape == ref.shape))
    return worst


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cut = Path(tmp) / "yunet_cut.onnx"
        cut_tails(SOURCE, cut)
        onnx2tf = str(Path(sys.executable).with_name("onnx2tf"))
        subprocess.run([onnx2tf, "-i", str(cut), "-o", str(Path(tmp) / "out"), "-ois", "input:1,3,384,640"],
                       check=True, stdout=subprocess.DEVNULL)
        converted = Path(tmp) / "out" / "yunet_cut_float32.tflite"
        worst = check(cut, converted)
        print(f"largest difference from OpenCV over 3 sizes: {worst:.2e}", file=sys.stderr)
        if worst > 1e-3:
            raise SystemExit("the converted model disagrees with the ONNX model: not installed")
        shutil.copyfile(converted, TARGET)
        print(f"wrote {TARGET}", file=sys.stderr)


if __name__ == "__main__":
    main()
