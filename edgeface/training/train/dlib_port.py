"""dlib's ResNet face descriptor rebuilt in tf_keras from the TF.js weights of ``@vladmandic/face-api`` and exported
to TFLite: the same teacher, several times faster, so it can label many augmented views.

The npm package (MIT code; dlib's weights are public domain) ships the network as a TF.js weights manifest + one
``.bin`` of uint8-quantized tensors (affine: ``q * scale + min``). The graph follows face-api's
``FaceRecognitionNet``: a 7x7/2 conv and 3x3/2 max pool, residual blocks of 32, 64, 128, 256 channels (each conv
followed by a per-channel scale), "down" blocks that add a 2x2 average-pooled, zero-channel-padded shortcut, global
average pooling and a 256x128 matrix. Input: dlib's 150x150 face chip, ``(rgb - mean) / 256``, as dlib does
(face-api divides by 255). Nothing here is used unless its embeddings match dlib's (see ``check_port``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.manifest import InputSpec
from edgeface.vision.embed import DLIB_CHIP, DLIB_DIVISOR, DLIB_MEAN_RGB, dlib_port_path

if TYPE_CHECKING:
    from edgeface.training.tf_setup import keras

BLOCKS = (("conv32_1", False), ("conv32_2", False), ("conv32_3", False), ("conv64_down", True), ("conv64_1", False),
          ("conv64_2", False), ("conv64_3", False), ("conv128_down", True), ("conv128_1", False), ("conv128_2", False),
          ("conv256_down", True), ("conv256_1", False), ("conv256_2", False), ("conv256_down_out", True))
# the fast variant (``dlib-resnet-fast``) drops the four 128- and 256-channel blocks that keep their input's size:
# -27 % FLOPs with every channel kept, so XNNPACK's kernels stay as full as in the whole network. Dropped one at a
# time from the fine-tuned network, untrained, these cost LFW 0.5-1.0 pp each against 1.7-5.6 pp for the 32- and
# 64-channel ones; all four at once 4.0 pp (benchmarks/archive/dlib_block_drop.py), which distillation then wins
# back (benchmarks/recipes/dlib_default.py --drop-blocks; the shipped fast variant also runs at 124 px: -50 %)
FAST_DROP = ("conv128_1", "conv128_2", "conv256_1", "conv256_2")


def read_tfjs_weights(model_dir: str | Path, stem: str = "face_recognition_model") -> dict[str, np.ndarray]:
    """{name: float32 array} from a TF.js ``<stem>-weights_manifest.json`` and its ``.bin`` shards."""
    model_dir = Path(model_dir)
    manifest_path = model_dir / f"{stem}-weights_manifest.json"
    try:
        groups = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EdgefaceError(f"cannot read {manifest_path}: {exc}") from None
    out: dict[str, np.ndarray] = {}
    for group in groups:
        data = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            quant = spec.get("quantization")
            dtype = np.dtype(quant["dtype"] if quant else spec["dtype"])
            if offset + count * dtype.itemsize > len(data):
                raise EdgefaceError(f"{manifest_path}: {spec['name']} runs past the end: the shards hold {len(data)} "
                                    "bytes")
            values = np.frombuffer(data, dtype, count, offset).astype(np.float32)
            if quant:
                values = values * np.float32(quant["scale"]) + np.float32(quant["min"])
            offset += count * dtype.itemsize
            out[spec["name"]] = values.reshape(spec["shape"])
        if offset != len(data):
            raise EdgefaceError(f"{manifest_path}: weights use {offset} bytes, the shards hold {len(data)}")
    return out


def build_dlib_resnet(weights: dict[str, np.ndarray], raw_rgb: bool = False, input_size: int = DLIB_CHIP,
                      drop: tuple[str, ...] = ()):
    """The descriptor network as a tf_keras model: (N, 150, 150, 3) chips -> (N, 128) descriptors.

    Each conv + scale pair is folded into one conv (``w * s``, ``b * s + t``): the same function, fewer ops.
    ``raw_rgb=False`` (the teacher): input ``(rgb - mean) / 256`` as dlib feeds it. ``raw_rgb=True`` (the model
    edgeface ships): input raw RGB 0..255, with dlib's per-channel mean and divisor folded exactly into the first
    conv (its padding is "valid", so no zero border ever meets the mean), since a manifest's normalisation is one
    number for all channels; and each down block's 2x2 average pool + zero channels become one fixed 2x2 stride-2
    conv (0.25 on the diagonal), the same function in float, which XNNPACK runs in int8 where it would leave
    ``AVERAGE_POOL_2D`` to the reference kernels. ``input_size`` below 150 runs the same weights on a chip resized
    down (all convolutions and a global average pool: any size works), a compression knob. ``drop`` names residual
    blocks (not down blocks) to leave out: each then passes its input on unchanged, another knob (``FAST_DROP``).
    """
    from edgeface.training.tf_setup import keras, tf

    def conv(x, name: str, stride: int, relu: bool, padding: str):
        kernel = weights[f"{name}/conv/filters"]
        s, t = weights[f"{name}/scale/weights"], weights[f"{name}/scale/biases"]
        layer = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[0], stride, padding=padding,
                                    name=name.replace("/", "_"))
        y = layer(x)
        kernel, bias = kernel * s, weights[f"{name}/conv/bias"] * s + t
        if raw_rgb and name == "conv32_down":
            mean = np.array(DLIB_MEAN_RGB, np.float32)
            bias = bias - np.einsum("hwio,i->o", kernel, mean) / DLIB_DIVISOR
            kernel = kernel / DLIB_DIVISOR
        layer.set_weights([kernel, bias])
        return keras.layers.ReLU()(y) if relu else y

    def pooled_shortcut(x, grow: int):
        if not raw_rgb:
            x = keras.layers.AveragePooling2D(2, 2, padding="valid")(x)
            if grow:
                x = keras.layers.Lambda(lambda v, g=grow: tf.pad(v, [[0, 0], [0, 0], [0, 0], [0, g]]))(x)
            return x
        channels = int(x.shape[-1])
        layer = keras.layers.Conv2D(channels + grow, 2, 2, padding="valid", use_bias=False)
        y = layer(x)
        kernel = np.zeros((2, 2, channels, channels + grow), np.float32)
        kernel[:, :, np.arange(channels), np.arange(channels)] = 0.25
        layer.set_weights([kernel])
        return y

    def block(x, name: str, down: bool):
        y = conv(x, f"{name}/conv1", 2 if down else 1, True, "valid" if down else "same")
        y = conv(y, f"{name}/conv2", 1, False, "same")
        shortcut = x
        if down:
            shortcut = pooled_shortcut(x, int(y.shape[-1]) - int(x.shape[-1]))
            if int(y.shape[1]) < int(shortcut.shape[1]):  # odd input: face-api pads the conv path at the end
                y = keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(y)
        return keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))

    inputs = keras.Input((input_size, input_size, 3), name="chip")
    x = conv(inputs, "conv32_down", 2, True, "valid")
    x = keras.layers.MaxPooling2D(3, 2, padding="valid")(x)
    if not set(drop) <= {name for name, down in BLOCKS if not down}:
        raise EdgefaceError(f"only residual blocks that keep their size can be dropped, got {', '.join(drop)}")
    for name, down in BLOCKS:
        if name not in drop:
            x = block(x, name, down)
    x = keras.layers.GlobalAveragePooling2D()(x)
    fc = weights["fc"]
    dense = keras.layers.Dense(fc.shape[1], use_bias=False, name="fc")
    out = dense(x)
    dense.set_weights([fc])
    return keras.Model(inputs, out, name="dlib_resnet")


def export_dlib_resnet(model_dir: str | Path, out: str | Path) -> Path:
    """Build from face-api's model folder and write a float32 ``.tflite`` (atomically)."""
    from edgeface.files import atomic_write
    from edgeface.training.export import convert

    data = convert(build_dlib_resnet(read_tfjs_weights(model_dir)), "float32", DLIB_INPUT)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as handle:
        handle.write(data)
    return out


# the shipped form's input: dlib's chip as raw RGB (its mean and 1/256 are folded into the first conv)
DLIB_INPUT = InputSpec(size=DLIB_CHIP, channels="RGB", mean=0.0, scale=1.0)
FACE_API = "@vladmandic/face-api@1.7.15"
WEIGHTS_LICENCE = ("dlib's ResNet face descriptor, public domain (CC0): Davis King, 'anyone can do whatever they want "
                   "with these model files'")


def fetch_face_api(dst: Path) -> Path:
    """``npm pack`` the face-api package into ``dst`` and unpack its recognition model; returns the model folder.

    Why npm and not a vendored copy: the 6.4 MB of weights stay out of the repository and come from the package's
    registry, pinned to one version.
    """
    import shutil
    import subprocess
    import tarfile

    if shutil.which("npm") is None:
        raise EdgefaceError("the dlib port needs face-api's weights from npm: install Node.js/npm, or set "
                            "EDGEFACE_FACE_API to a folder holding face_recognition_model-weights_manifest.json")
    dst.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["npm", "pack", FACE_API, "--silent"], cwd=dst, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise EdgefaceError(f"npm pack {FACE_API} failed: {done.stderr.strip().splitlines()[-1:]}")
    archive = dst / done.stdout.strip().splitlines()[-1]
    model_dir = dst / "model"
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.startswith("package/model/face_recognition_model") and member.isfile():
                member.name = Path(member.name).name
                tar.extract(member, model_dir, filter="data")
    return model_dir


def face_api_weights() -> Path:
    """face-api's model folder: ``$EDGEFACE_FACE_API`` if set, else fetched by npm once into the cache."""
    from edgeface.files import cache_dir

    given = os.environ.get("EDGEFACE_FACE_API")
    if given:
        return Path(given)
    cached = cache_dir("teachers") / "face-api"
    if not (cached / "face_recognition_model-weights_manifest.json").is_file():
        with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
            fetched = fetch_face_api(Path(tmp))
            if not cached.exists():
                fetched.rename(cached)  # whole or not at all: a cut fetch leaves nothing behind
    return cached


def ensure_dlib_port() -> Path:
    """The dlib port's ``.tflite`` (the teacher), built on first use from face-api's weights."""
    path = dlib_port_path()
    if path.is_file():
        return path
    return export_dlib_resnet(face_api_weights(), path)


def dlib_manifest(input_size: int = DLIB_CHIP):
    """What the shipped form of the port is fed and where its weights come from."""
    from dataclasses import replace

    from edgeface.manifest import Manifest
    from edgeface.vision.detector_options import DLIB_CHIP_ALIGNMENT

    return Manifest(input=replace(DLIB_INPUT, size=input_size), embedding_size=128,
                    architecture="dlib-resnet", alignment=DLIB_CHIP_ALIGNMENT,
                    chain=[port_step(input_size)])


def port_step(input_size: int = DLIB_CHIP) -> dict:
    """The provenance step of every model that starts from dlib's weights: where they come from, their licence."""
    return {"step": "dlib-port", "weights": f"npm {FACE_API} (face_recognition_model)", "licence": WEIGHTS_LICENCE,
            **({"input_size": input_size} if input_size != DLIB_CHIP else {})}


def drop_step() -> dict:
    """The provenance step of every ``dlib-resnet-fast`` model: which of dlib's blocks it runs without."""
    return {"step": "drop-blocks", "blocks": list(FAST_DROP)}


def export_dlib_model(out: str | Path) -> Path:
    """dlib's descriptor as an edgeface model: float32 ``.tflite``, raw RGB in (``build_dlib_resnet(raw_rgb=True)``),
    its manifest inside naming the YuNet-to-dlib-chip alignment and the weights' provenance and licence.

    The descriptors stay as dlib makes them: centring them on the mean face before the cosine (as ``distill`` does
    with teacher targets) was measured to cost 1.2 pp on LFW (97.65 against 98.85 %), since dlib's metric is the
    Euclidean distance between uncentred descriptors of near-constant length."""
    from edgeface.training.export import export
    from edgeface.training.models.registry import build_model

    path, _ = export(build_model("dlib-resnet"), out, "float32", manifest=dlib_manifest())
    return path


def save_dlib_keras(out: str | Path, input_size: int = DLIB_CHIP) -> Path:
    """The shipped form as a Keras model with its manifest: what ``export`` quantizes and ``distill`` starts from."""
    from edgeface.training.models.registry import build_model, count_flops
    from edgeface.training.train.keras_io import save_keras

    model = build_model("dlib-resnet", input_size=input_size)
    manifest = dlib_manifest(input_size)
    manifest.params, manifest.flops = int(model.count_params()), count_flops(model)
    return save_keras(model, out, manifest)


def copy_without_blocks(trained: keras.Model, model: keras.Model, drop: tuple[str, ...],
                        name: str = "the model") -> None:
    """Give ``model`` (dlib's network less the blocks ``drop``) the weights of ``trained`` (the whole network).
    Layers are matched in order (the down blocks' shortcut convs carry no block name), skipping the dropped blocks'
    convs."""
    kept = [layer for layer in trained.layers if layer.weights
            and not any(layer.name.startswith(f"{block}_") for block in drop)]
    ours = [layer for layer in model.layers if layer.weights]
    if [[w.shape for w in a.get_weights()] for a in kept] != [[w.shape for w in b.get_weights()] for b in ours]:
        raise EdgefaceError(f"{name}: its layers are not dlib's ResNet's")
    for theirs, layer in zip(kept, ours, strict=True):
        layer.set_weights(theirs.get_weights())


def save_without_blocks(trained: str | Path, out: str | Path) -> Path:
    """A trained ``dlib-resnet`` (Keras, with its manifest) with the blocks ``FAST_DROP`` removed, every other
    layer keeping its trained weights (``copy_without_blocks``): what ``distill --arch dlib-resnet-fast --init``
    starts from."""
    from dataclasses import replace

    from edgeface.manifest import load_manifest
    from edgeface.training.models.registry import build_model, count_flops
    from edgeface.training.train.keras_io import load_keras, save_keras

    manifest = load_manifest(trained)
    if manifest is None or manifest.architecture != "dlib-resnet":
        raise EdgefaceError(f"{trained}: blocks are dropped from a dlib-resnet model with its manifest")
    source = load_keras(trained)
    model = build_model("dlib-resnet-fast", input_size=int(source.inputs[0].shape[1]))
    copy_without_blocks(source, model, FAST_DROP, str(trained))
    step = {**drop_step(), "from": str(trained)}
    manifest = replace(manifest, architecture="dlib-resnet-fast", params=int(model.count_params()),
                       flops=count_flops(model), chain=[*manifest.chain, step], sha256="", size_bytes=0)
    return save_keras(model, out, manifest)
