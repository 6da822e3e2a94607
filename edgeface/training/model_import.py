"""``edgeface import``: a face embedder from elsewhere (ONNX, SavedModel, Keras, float .tflite) -> a float .tflite
with a manifest, its normalisation checked on real faces instead of trusted.

Why check: a wrong ``--input-mean``/``--input-scale``/``--channels`` does not fail, it quietly scores near chance
(a model fed 0..255 where it expects [-1, 1] still returns unit vectors). Same-person pairs scoring below
different-person pairs is the tell, and trying the usual conventions names the one that works.
ONNX goes through onnx2tf (NCHW -> NHWC, measured the most faithful of the converters we could install here),
SavedModel and Keras through the TFLite converter; all of them need the training half (TensorFlow).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.manifest import InputSpec, Manifest, write_model
from edgeface.runtime.graph import list_ops, modernised, read_graph

MIN_AUC = 0.75  # a face embedder separates a handful of people far better; random weights score ~0.5-0.65
CONVENTIONS = {  # the normalisations face models ship with: (mean, scale, channels)
    "[-1, 1] RGB": (127.5, 1 / 127.5, "RGB"), "[-1, 1] BGR": (127.5, 1 / 127.5, "BGR"),
    "0..255 RGB": (0.0, 1.0, "RGB"), "0..255 BGR": (0.0, 1.0, "BGR"),
    "[0, 1] RGB": (0.0, 1 / 255, "RGB"), "[0, 1] BGR": (0.0, 1 / 255, "BGR"),
    "ArcFace 128/128 RGB": (127.5, 1 / 128, "RGB"),
}


def source_kind(path: Path) -> str:
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return "savedmodel"
        raise EdgefaceError(f"{path} is a folder without saved_model.pb: not a SavedModel")
    if not path.exists():
        raise EdgefaceError(f"model not found: {path}")
    kinds = {".onnx": "onnx", ".tflite": "tflite", ".h5": "keras", ".keras": "keras"}
    if path.suffix.lower() not in kinds:
        raise EdgefaceError(f"cannot import {path.name}: expected .onnx, .tflite, .h5, .keras or a SavedModel folder")
    return kinds[path.suffix.lower()]


def _onnx_to_tflite(path: Path, size: int | None) -> bytes:
    try:
        import onnx
        import onnx2tf
    except ImportError:
        raise EdgefaceError("importing ONNX needs onnx2tf and TensorFlow: pip install 'edgeface[import]'") from None
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError and others on a damaged file
        raise EdgefaceError(f"{path.name} is not a readable ONNX model: {type(exc).__name__}") from None
    graph = proto.graph
    initialisers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1:
        raise EdgefaceError(f"{path.name} has {len(inputs)} inputs; a face embedder takes one image")
    dims = [d.dim_value if d.dim_value > 0 else -1 for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise EdgefaceError(f"{path.name} input {inputs[0].name} has shape {dims}; expected an image (N, C, H, W)")
    channels_first = dims[1] == 3 or (dims[1] == -1 and dims[3] != 3)
    h, w = (dims[2], dims[3]) if channels_first else (dims[1], dims[2])
    if (h < 0 or w < 0) and not size:
        raise EdgefaceError(f"{path.name} takes any face size ({dims}): pass --size, e.g. --size 112")
    h, w = (size, size) if size else (h, w)
    shape = [1, 3, h, w] if channels_first else [1, h, w, 3]
    for dim, value in zip(inputs[0].type.tensor_type.shape.dim, shape, strict=True):  # batch 1, the face size fixed
        dim.ClearField("dim_param")
        dim.dim_value = value
    with tempfile.TemporaryDirectory(prefix="edgeface-import-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        fixed = Path(tmp) / path.name
        onnx.save(proto, str(fixed))
        # onnx2tf checks its conversion on 20 sample images that it downloads into the working folder unless they
        # are there: this machine may be offline, so they are made here (seeded, image-like values in [0, 1])
        samples = np.random.default_rng(0).uniform(0, 1, (20, 128, 128, 3)).astype(np.float32)
        np.save(Path(tmp) / "calibration_image_sample_data_20x128x128x3_float32.npy", samples)
        here = os.getcwd()
        try:
            os.chdir(tmp)
            onnx2tf.convert(input_onnx_file_path=str(fixed), output_folder_path=tmp, non_verbose=True,
                            output_signaturedefs=True)
        except Exception as exc:  # onnx2tf raises anything, and sometimes SystemExit
            raise EdgefaceError(f"onnx2tf could not convert {path.name}: {str(exc).strip()[:200]}") from None
        except SystemExit:
            raise EdgefaceError(f"onnx2tf could not convert {path.name} (unsupported op?)") from None
        finally:
            os.chdir(here)
        found = sorted(Path(tmp).glob("*_float32.tflite"))
        if not found:
            raise EdgefaceError(f"onnx2tf wrote no float32 .tflite for {path.name}")
        return found[0].read_bytes()


def _keras_to_tflite(path: Path, kind: str) -> bytes:
    from edgeface.training.tf_setup import keras, tf

    try:
        if kind == "savedmodel":
            converter = tf.lite.TFLiteConverter.from_saved_model(str(path))
        else:
            model = keras.models.load_model(str(path), compile=False)
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
        return converter.convert()
    except (OSError, ValueError, TypeError, ImportError) as exc:
        hint = " (a Keras 3 file? save it as a SavedModel: model.export(folder))" if kind == "keras" else ""
        raise EdgefaceError(f"cannot convert {path.name}: {str(exc).strip().splitlines()[0][:160]}{hint}") from None


def to_float_tflite(path: Path, size: int | None = None) -> tuple[bytes, str]:
    """The float .tflite bytes of any supported source, and its kind."""
    kind = source_kind(path)
    if kind == "tflite":
        from edgeface.runtime.interpreter import check_tflite_file

        content = check_tflite_file(path)
    elif kind == "onnx":
        content = _onnx_to_tflite(path, size)
    else:
        content = _keras_to_tflite(path, kind)
    content = modernised(content)
    quantized = sorted({o.kind for o in list_ops(read_graph(content)) if o.precision not in ("float32", "int32",
                                                                                            "int64", "bool")})
    if quantized and kind == "tflite":
        raise EdgefaceError(f"{path.name} is already quantized ({', '.join(quantized[:3])}): import its float model, "
                            "then quantize that with edgeface quantize")
    return content, kind


def check_faces(folder: Path, alignment: str | None, per_person: int = 4, people: int = 12) -> tuple[np.ndarray,
                                                                                                     np.ndarray]:
    """Aligned faces and person ids from an enrol-style folder (one sub-folder of photos per person)."""
    from edgeface.vision.detect import FaceFinder
    from edgeface.vision.image import is_image, read_image

    if not folder.is_dir():
        raise EdgefaceError(f"check-faces folder not found: {folder}")
    finder = FaceFinder(alignment=alignment)
    crops, ids = [], []
    persons = [p for p in sorted(folder.iterdir()) if p.is_dir()]
    for pid, person in enumerate(persons):
        photos = [p for p in sorted(person.iterdir()) if p.is_file() and is_image(p)][:per_person]
        for photo in photos:
            crop = finder.aligned_main(read_image(photo))
            if crop is not None:
                crops.append(crop)
                ids.append(pid)
        if len(set(ids)) >= people:
            break
    ids_arr = np.array(ids)
    counts = np.bincount(ids_arr) if len(ids_arr) else np.array([])
    if (counts >= 2).sum() < 2:
        raise EdgefaceError(f"{folder} needs at least 2 people with 2 photos each (one folder per person) to check "
                            "the normalisation")
    return np.stack(crops), ids_arr


def separation(content: bytes, spec: InputSpec, crops: np.ndarray, ids: np.ndarray) -> dict:
    """Mean cosine of same-person and of different-person pairs, and the share of (same, different) pairs in the
    right order (the AUC over these faces)."""
    from edgeface.runtime.interpreter import Model
    from edgeface.vision.embed import l2_normalise, preprocess

    model = Model("<import check>", content=content)
    if model.input.shape[1] != spec.size:
        spec = InputSpec(size=int(model.input.shape[1]), channels=spec.channels, mean=spec.mean, scale=spec.scale)
    emb = l2_normalise(model(preprocess(crops, spec)).reshape(len(crops), -1))
    sims = emb @ emb.T
    upper = np.triu(np.ones_like(sims, bool), 1)
    same = sims[upper & (ids[:, None] == ids[None, :])]
    diff = sims[upper & (ids[:, None] != ids[None, :])]
    auc = float((same[:, None] > diff[None, :]).mean() + 0.5 * (same[:, None] == diff[None, :]).mean())
    return {"same": float(same.mean()), "different": float(diff.mean()), "auc": auc}


def check_normalisation(content: bytes, spec: InputSpec, crops: np.ndarray, ids: np.ndarray,
                        pick: bool = False) -> tuple[InputSpec, dict]:
    """Refuse a normalisation under which same-person pairs do not score above different-person pairs (or clearly
    worse than a usual convention), naming the convention that works; with ``pick``, take the best convention.
    Returns the spec to use and the check's numbers."""
    trials = {name: separation(content, InputSpec(spec.size, ch, mean, scale), crops, ids)
              for name, (mean, scale, ch) in CONVENTIONS.items()}
    best_name, best = max(trials.items(), key=lambda kv: kv[1]["auc"])
    if pick:
        mean, scale, ch = CONVENTIONS[best_name]
        spec = InputSpec(spec.size, ch, mean, scale)
    if best["auc"] < MIN_AUC:
        raise EdgefaceError(f"the model does not tell these {len(set(ids.tolist()))} people apart under any usual "
                            f"normalisation (best AUC {best['auc']:.2f}, as {best_name}): is it a face embedder, and "
                            "are its faces aligned as --alignment says?")
    given = separation(content, spec, crops, ids)
    if given["same"] <= given["different"] or given["auc"] < best["auc"] - 0.05:
        mean, scale, ch = CONVENTIONS[best_name]
        raise EdgefaceError(
            f"the normalisation looks wrong: same-person pairs score {given['same']:.2f} against "
            f"{given['different']:.2f} for different people (AUC {given['auc']:.2f}); as {best_name} they score "
            f"{best['same']:.2f} against {best['different']:.2f} (AUC {best['auc']:.2f}): "
            f"--input-mean {mean:g} --input-scale {scale:.7g} --channels {ch}")
    return spec, {"given": given, "best_convention": best_name, "picked": pick, "conventions": trials}


def import_model(source: Path, out: Path, spec: InputSpec, alignment: str | None, size: int | None = None,
                 faces: Path | None = None, pick: bool = False) -> tuple[Path, Manifest, dict]:
    """Convert, check (``pick``: choose) the normalisation on ``faces``, and write ``out`` with its manifest;
    returns (path, manifest, check report)."""
    from edgeface.runtime.flops import flops_per_op
    from edgeface.runtime.interpreter import Model

    if out.suffix != ".tflite":
        raise EdgefaceError(f"output must end in .tflite, got {out.name}")
    content, kind = to_float_tflite(source, size)
    model = Model(source.name, content=content)
    shape, out_shape = model.input.shape, model.output.shape
    if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
        raise EdgefaceError(f"{source.name} takes input {list(shape)}; edgeface needs a square RGB face (1, S, S, 3)")
    if len(out_shape) != 2 or out_shape[1] < 2:
        raise EdgefaceError(f"{source.name} outputs {list(out_shape)}; expected one embedding vector (1, D)")
    spec = InputSpec(size=int(shape[1]), channels=spec.channels, mean=spec.mean, scale=spec.scale)
    report: dict = {"source": str(source), "format": kind, "checked": False}
    if faces is not None:
        crops, ids = check_faces(faces, alignment)
        spec, check = check_normalisation(content, spec, crops, ids, pick)
        report.update(check, checked=True, faces=len(crops))
    elif pick:
        raise EdgefaceError("without --check-faces the normalisation must be given: --input-mean, --input-scale, "
                            "--channels")
    manifest = Manifest(input=spec, embedding_size=int(out_shape[1]), dtype="float32", alignment=alignment,
                        flops=sum(flops_per_op(source.name, content).values()), architecture=source.stem,
                        chain=[{"step": "import", "source": source.name, "format": kind}])
    return write_model(out, content, manifest), manifest, report
