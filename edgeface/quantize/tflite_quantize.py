"""Post-training quantization of a float ``.tflite`` with the LiteRT quantizer (``litert-quantizer``), no TensorFlow.

Why a second path beside the Keras converter: users arrive with a float ``.tflite`` of their own (or one ``edgeface
import`` made from ONNX), and nothing else turns it into an int8 file whose accuracy is then proved on LFW. Before
quantizing, the graph is modernised (old converters' opcodes, a signature to calibrate through) and made
int8-friendly for XNNPACK (``tflite_rewrite``). ``--max-drop`` keeps the most damaged layers in float, found by a
per-layer error report, until the exported file is within the budget on LFW View 2.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeface.choices import RECIPES
from edgeface.errors import EdgefaceError
from edgeface.manifest import InputSpec
from edgeface.runtime.graph import WEIGHTED_OPS, list_ops, modernised, read_graph

STATIC = ("int8", "int16x8")


def _quantizer():
    try:
        from litert_quantizer import quantizer, recipe
    except ImportError:
        raise EdgefaceError("quantizing a .tflite needs the LiteRT quantizer: pip install 'edgeface[quantize]'"
                            ) from None
    return quantizer, recipe


def recipe_for(name: str) -> list[dict]:
    if name not in RECIPES:
        raise EdgefaceError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    _, recipe = _quantizer()
    make = {"dynamic": recipe.dynamic_wi8_afp32, "weight-only": recipe.weight_only_wi8_afp32,
            "int8": recipe.static_wi8_ai8, "int16x8": recipe.static_wi8_ai16}[name]
    return list(make())


def check_float_model(content: bytes, name: str) -> None:
    """Refuse with one line what the quantizer cannot take: a quantized model, a dynamic face size, no subgraph."""
    from edgeface.runtime.interpreter import Model

    model = read_graph(content)
    quantized = sorted({f"{o.kind} ({o.precision})" for o in list_ops(model)
                        if o.kind in WEIGHTED_OPS and o.precision != "float32"})
    if quantized:
        raise EdgefaceError(f"{name} is already quantized ({', '.join(quantized[:3])}): quantize needs the float "
                            "model it came from")
    interp = Model(name, content=content).interpreter
    inputs = interp.get_input_details()
    if len(inputs) != 1:
        raise EdgefaceError(f"{name} has {len(inputs)} inputs; a face embedder takes one image")
    signature = [int(d) for d in inputs[0].get("shape_signature", inputs[0]["shape"])]
    if any(d < 0 for d in signature[1:]):
        raise EdgefaceError(f"{name} takes a dynamic input shape {signature}: re-import it with a fixed face size "
                            "(edgeface import --size 112)")
    if np.dtype(inputs[0]["dtype"]) != np.float32:
        raise EdgefaceError(f"{name} takes {np.dtype(inputs[0]['dtype']).name} input, not float32: quantize needs a "
                            "float model")


@dataclass
class Overrides:
    """Layers (op output tensor names) kept out of the recipe: in float, or in int16 activations."""

    keep_float: list[str] = field(default_factory=list)
    keep_int16: list[str] = field(default_factory=list)

    def entries(self) -> list[dict]:
        rows = [{"regex": f"^{re.escape(n)};", "operation": "*", "algorithm_key": "no_quantize"}
                for n in self.keep_float]
        for n in self.keep_int16:
            rows.append({"regex": f"^{re.escape(n)};", "operation": "*", "algorithm_key": "min_max_uniform_quantize",
                         "op_config": {"activation_tensor_config": {"num_bits": 16, "symmetric": True,
                                                                    "granularity": "TENSORWISE", "dtype": "INT"},
                                       "weight_tensor_config": {"num_bits": 8, "symmetric": True,
                                                                "granularity": "CHANNELWISE", "dtype": "INT"},
                                       "compute_precision": "INTEGER", "explicit_dequantize": False}})
        return rows


def prepare_float(content: bytes, rewrite: bool = True) -> tuple[bytes, dict[str, int]]:
    """Modernised and (with ``rewrite``) int8-friendly float model, with the rewrite counts."""
    from edgeface.quantize.tflite_rewrite import int8_friendly
    from edgeface.tflite_metadata import strip_manifest

    content = modernised(strip_manifest(content))  # the float model's manifest does not describe what comes out
    return int8_friendly(content) if rewrite else (content, {})


CALIBRATION_BYTES = 1 << 30  # float inputs the calibrator may hold
MIN_CALIBRATION_FACES = 16


def quantize_float(content: bytes, recipe: str, spec: InputSpec, faces: np.ndarray | None,
                   overrides: Overrides | None = None, rewrite: bool = True) -> bytes:
    """The quantized flatbuffer of a prepared float model (``prepare_float``); with ``rewrite``, int8 MIN/MAX then
    work on their input's own scale (``tflite_rewrite.share_minmax_params``)."""
    from edgeface.progress import progress_bar
    from edgeface.quantize.tflite_rewrite import int8_minmax

    quantizer, _ = _quantizer()
    entries = recipe_for(recipe) + (overrides.entries() if overrides else [])
    q = quantizer.Quantizer(bytearray(content), entries)
    with progress_bar() as bar:
        task = bar.add_task(f"{recipe} quantization (litert-quantizer)", total=2)
        quantized = calibrate_and_quantize(q, content, recipe, spec, faces, lambda: bar.advance(task))
    return int8_minmax(quantized)[0] if rewrite else quantized


def calibrate_and_quantize(q: object, content: bytes, recipe: str, spec: InputSpec, faces: np.ndarray | None,
                           step: Callable[[], None]) -> bytes:
    """Calibrate (static recipes) and quantize, each quietly (``quiet``), calling ``step`` after each."""
    from edgeface.vision.embed import preprocess

    calibration = None
    if q.need_calibration:
        if faces is None or not len(faces):
            raise EdgefaceError(f"the {recipe} recipe needs calibration faces: pass --calib-data FOLDER")
        signature = read_graph(content).signatureDefs[0]
        name = signature.inputs[0].name.decode()
        samples = [{name: preprocess(f[None], spec).astype(np.float32)} for f in faces]
        try:
            with quiet():
                calibration = q.calibrate({signature.signatureKey.decode(): samples})
        except (ValueError, RuntimeError, KeyError) as exc:
            raise EdgefaceError(f"calibration failed: {str(exc).strip().splitlines()[0][:200]}") from None
    step()
    try:
        with quiet():
            quantized = bytes(q.quantize(calibration, enable_progress_bar=False,
                                         enable_progress_report=False).quantized_model)
    except (ValueError, RuntimeError, KeyError, NotImplementedError) as exc:
        raise EdgefaceError(f"the LiteRT quantizer refused this model: {str(exc).strip().splitlines()[0][:200]}"
                            ) from None
    step()
    return quantized


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The quantizer's own progress bars (one tick per op and sample: 60,600 for a full calibration) and its
    warning that the calibrator keeps every tensor (on purpose) go nowhere: edgeface's progress is the one shown."""
    with warnings.catch_warnings(), open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        warnings.filterwarnings("ignore", message=".*preserve_all_tensors.*")
        yield


def calibration_crops(folders: Sequence[str | Path], count: int, alignment: str | None,
                      seed: int = 0) -> np.ndarray:
    """``count`` aligned faces from folders of prepared crops (``edgeface data prepare``) or of plain photos
    (detected and aligned here, the way the model will see faces on the device)."""
    from edgeface.data.prepare import read_manifest
    from edgeface.vision.detect import FaceFinder
    from edgeface.vision.image import is_image, read_image

    if count < 1:
        raise EdgefaceError(f"--calib must be at least 1, got {count}")
    files: list[tuple[Path, bool]] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise EdgefaceError(f"calibration folder not found: {folder}")
        records = [r for r in read_manifest(folder) if r.get("status") == "ok"]
        if records:
            files += [(folder / r["file"], True) for r in records]
        else:
            files += [(p, False) for p in sorted(folder.rglob("*")) if p.is_file() and is_image(p)]
    if not files:
        raise EdgefaceError(f"no calibration faces in {', '.join(map(str, folders))}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    finder = None
    crops = []
    for i in order:
        path, aligned = files[i]
        image = read_image(path)
        if aligned:
            crops.append(image)
        else:
            finder = finder or FaceFinder(alignment=alignment)
            crop = finder.aligned_main(image)
            if crop is not None:
                crops.append(crop)
        if len(crops) == count:
            break
    if not crops:
        raise EdgefaceError(f"no face found in the calibration photos of {', '.join(map(str, folders))}")
    return np.stack(crops)


def _snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((reference - test) ** 2))
    signal = float(np.sum(reference**2))
    return 99.0 if noise == 0 else float(10 * np.log10(max(signal, 1e-30) / noise))


def _named_runs(content: bytes, xs: list[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """Every activation of one run per input, dequantized to float, by tensor name."""
    from edgeface.runtime.ops_profile import tensor_runs

    tensors = read_graph(content).subgraphs[0].tensors
    for values in tensor_runs(content, xs):
        out = {}
        for i, t in enumerate(tensors):
            if i not in values or not t.name:
                continue
            v = values[i].astype(np.float32)
            q = t.quantization
            if q is not None and q.scale is not None and len(q.scale) == 1 and t.type in (3, 7, 9):
                v = (v - float(q.zeroPoint[0])) * float(q.scale[0])
            elif q is not None and q.scale is not None and len(q.scale) > 1:
                continue  # per-channel tensors are weights, not activations
            out[t.name.decode(errors="replace")] = v
        yield out


def layer_errors(float_content: bytes, quant_content: bytes, spec: InputSpec, faces: np.ndarray) -> list[dict]:
    """Per weighted op of the float graph: SNR (dB) and cosine of its output in the quantized model against the
    float model on the same faces, and how many dB the op itself lost (its input's SNR minus its output's): the
    error it introduced, not the error it inherited. Sorted most damaging first."""
    from edgeface.vision.embed import preprocess

    graph = read_graph(float_content)
    ops = [(o, graph.subgraphs[0].operators[o.index]) for o in list_ops(graph) if o.kind in WEIGHTED_OPS]
    names = {o.index: (graph.subgraphs[0].tensors[int(op.inputs[0])].name.decode(errors="replace"), o.name)
             for o, op in ops}
    stats: dict[int, list[tuple[float, float, float]]] = {o.index: [] for o, _ in ops}
    xs = [preprocess(face[None], spec).astype(np.float32) for face in faces]
    for ref, got in zip(_named_runs(float_content, xs), _named_runs(quant_content, xs), strict=True):
        for index, (inp, out) in names.items():
            if out in ref and out in got and ref[out].shape == got[out].shape:
                a, b = ref[out].ravel(), got[out].ravel()
                cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
                snr_in = _snr_db(ref[inp], got[inp]) if inp in ref and inp in got and ref[inp].shape == got[
                    inp].shape else 99.0
                stats[index].append((_snr_db(a, b), cos, snr_in))
    rows = []
    for o, _ in ops:
        if not stats[o.index]:
            continue
        snr, cos, snr_in = (float(np.mean(v)) for v in zip(*stats[o.index], strict=True))
        rows.append({"index": o.index, "op": o.kind, "name": o.name, "snr_db": snr, "cosine": cos,
                     "introduced_db": max(0.0, min(snr_in, 60.0) - min(snr, 60.0))})
    rows.sort(key=lambda r: -r["introduced_db"])
    return rows


def within_budget(float_content: bytes, recipe: str, spec: InputSpec, faces: np.ndarray,
                  score: Callable[[bytes], dict], max_drop_pp: float,
                  on_step: Callable[[dict], None] | None = None, rewrite: bool = True) -> tuple[bytes, dict]:
    """Quantize, then keep the most damaging layers (``layer_errors``) in float, doubling their number, until the
    LFW accuracy (``score``: bytes -> report) of the exported file is within ``max_drop_pp`` of the float model's.
    Returns the file and the search log (its last step carries the file's full LFW report)."""
    baseline = score(float_content)["accuracy"]
    quant = quantize_float(float_content, recipe, spec, faces, rewrite=rewrite)
    errors = layer_errors(float_content, quant, spec, faces[: min(len(faces), 16)])
    kept: list[str] = []
    steps = []
    k = 0
    while True:
        report = score(quant)
        accuracy = report["accuracy"]
        step = {"kept_float": list(kept), "accuracy": accuracy, "drop_pp": 100 * (baseline - accuracy),
                "size_bytes": len(quant), "lfw": report}
        steps.append(step)
        if on_step:
            on_step(step)
        if step["drop_pp"] <= max_drop_pp or k >= len(errors):
            break
        k = max(1, 2 * k)
        kept = [r["name"] for r in errors[:k]]
        quant = quantize_float(float_content, recipe, spec, faces, Overrides(keep_float=kept), rewrite=rewrite)
    return quant, {"float_accuracy": baseline, "steps": steps, "within_budget": steps[-1]["drop_pp"] <= max_drop_pp,
                   "layer_errors": errors}


def lfw_scorer(lfw_dir: str | Path, pairs: str | Path, spec: InputSpec, alignment: str | None,
               workers: int = 2) -> Callable[[bytes], dict]:
    """A function: .tflite bytes -> the LFW View 2 report of that exact file (detections cached after the first)."""
    from edgeface.evaluate.lfw import evaluate_lfw
    from edgeface.vision.embed import TFLiteEmbedder

    folder = Path(tempfile.mkdtemp(prefix="edgeface-quantize-"))

    def score(content: bytes) -> float:
        path = folder / "candidate.tflite"
        path.write_bytes(content)
        embedder = TFLiteEmbedder(path, mean=spec.mean, scale=spec.scale, channels=spec.channels)
        embedder.alignment = alignment
        return evaluate_lfw(embedder, lfw_dir, pairs, workers=workers)

    return score


def input_spec_of(model: Path, mean: float | None, scale: float | None,
                  channels: str | None) -> tuple[InputSpec, str | None]:
    """The normalisation and alignment a model is run with: its manifest, overridden by flags; a model with neither
    is refused, as everywhere else."""
    from edgeface.vision.embed import TFLiteEmbedder

    embedder = TFLiteEmbedder(model, mean=mean, scale=scale, channels=channels)
    return embedder.spec, embedder.alignment


def hold_threshold(path: Path, lfw_dir: str | Path, pairs: str | Path) -> dict | None:
    """Replace the written file's plain-LFW threshold by one that holds under every camera condition (as the shipped
    models' does: ``eval --save-threshold --hold-conditions``), when ``pairs`` has enough impostor pairs for it;
    what was stored, or None."""
    from edgeface.evaluate.lfw import MIN_IMPOSTOR_PAIRS, evaluate_lfw, parse_pairs, save_threshold
    from edgeface.vision.embed import load_embedder

    if int((~parse_pairs(pairs).same).sum()) < MIN_IMPOSTOR_PAIRS:
        return None
    embedder = load_embedder(path)
    report = evaluate_lfw(embedder, lfw_dir, pairs)
    save_threshold(path, embedder, report, lfw_dir, pairs, hold_conditions=True)
    return {"threshold": report["saved_threshold"], "source": report["threshold_source"]}


def check_outputs_finite(content: bytes, spec: InputSpec, faces: np.ndarray | None, name: str) -> None:
    """Refuse a quantized network whose embeddings are not finite numbers (NaN or inf on real faces, or on a grey
    square without them): such a file would be refused at every use, so it is never written."""
    from edgeface.runtime.interpreter import Model
    from edgeface.vision.embed import preprocess

    model = Model(name, content=content)
    crops = faces[:4] if faces is not None and len(faces) else np.full((1, spec.size, spec.size, 3), 128, np.uint8)
    outputs = model(np.concatenate([preprocess(c[None], spec) for c in crops]).astype(np.float32))
    if not np.isfinite(outputs).all():
        raise EdgefaceError(f"quantizing {name} gave a network whose outputs are not finite numbers (NaN or inf); "
                            "nothing was written: try --recipe dynamic, or check the float model's normalisation")


def quantize_file(model: Path, out: Path, recipe: str, normalisation: tuple[float | None, float | None, str | None],
                  calib_data: Sequence[Path], calib: int = 200, rewrite: bool = True, max_drop: float | None = None,
                  lfw_dir: Path | None = None, pairs: Path | None = None, report_layers: bool = False) -> dict:
    """``edgeface quantize MODEL.tflite``: every check first, then quantize (within ``max_drop`` pp on LFW when
    given), write ``out`` with its manifest, and return what was done. ``normalisation``: (mean, scale, channels)
    flags, each overriding the model's manifest."""
    from edgeface.manifest import Manifest, load_manifest, write_model
    from edgeface.runtime.interpreter import check_tflite_file

    if out.suffix != ".tflite":
        raise EdgefaceError(f"output must end in .tflite, got {out.name}")
    if out.resolve() == model.resolve():
        raise EdgefaceError("--out must not be the input model: quantize writes a new file")
    if max_drop is not None and (lfw_dir is None or pairs is None):
        raise EdgefaceError("--max-drop is measured on LFW View 2: pass --lfw-dir and --pairs")
    if max_drop is not None and not (math.isfinite(max_drop) and 0 <= max_drop <= 100):
        raise EdgefaceError(f"--max-drop must be 0 to 100 percentage points, got {max_drop}")
    if recipe not in RECIPES:
        raise EdgefaceError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    content = check_tflite_file(model)
    check_float_model(content, model.name)
    spec, alignment = input_spec_of(model, *normalisation)
    if recipe in STATIC and not calib_data:
        raise EdgefaceError(f"the {recipe} recipe needs calibration faces: pass --calib-data FOLDER (photos, or "
                            "faces from edgeface data prepare)")
    prepared, rewrites = prepare_float(content, rewrite)
    # the calibrator holds every face's float input at once (a 2000x2000 input is 48 MB a face): bounded in bytes
    affordable = max(MIN_CALIBRATION_FACES, CALIBRATION_BYTES // (4 * 3 * spec.size * spec.size))
    faces = calibration_crops(calib_data, min(calib, affordable), alignment) if calib_data else None
    log: dict = {"model": str(model), "recipe": recipe, "rewrites": rewrites,
                 "calibration_faces": 0 if faces is None else len(faces),
                 **({"calibration_faces_capped_by_memory": affordable} if calib > affordable else {})}
    if max_drop is not None:
        if faces is None:
            raise EdgefaceError("--max-drop needs calibration faces to rank the layers: pass --calib-data FOLDER")
        scorer = lfw_scorer(lfw_dir, pairs, spec, alignment)
        quant, search = within_budget(prepared, recipe, spec, faces, scorer, max_drop, rewrite=rewrite)
        log.update(search, max_drop_pp=max_drop)
        log["layer_errors"] = search["layer_errors"][:20]
    else:
        quant = quantize_float(prepared, recipe, spec, faces, rewrite=rewrite)
        if report_layers and faces is not None:
            log["layer_errors"] = layer_errors(prepared, quant, spec, faces[:16])[:20]
    check_outputs_finite(quant, spec, faces, model.name)
    base = load_manifest(model, content=content) or Manifest()
    final = log["steps"][-1] if max_drop is not None else None
    manifest = Manifest(input=spec, embedding_size=base.embedding_size, dtype=f"{recipe} (litert-quantizer)",
                        alignment=alignment, architecture=base.architecture, flops=base.flops,
                        chain=[*base.chain, {"step": "quantize", "recipe": recipe, "rewrites": rewrites,
                                             "kept_float": final["kept_float"] if final else []}])
    if final:  # the file's own LFW numbers and threshold, measured on exactly these bytes
        lfw = final["lfw"]
        manifest.threshold = lfw["threshold_at_far"]["0.001"]
        manifest.threshold_far, manifest.threshold_source = 1e-3, "LFW View 2 (edgeface quantize --max-drop)"
        manifest.metrics["lfw"] = {k: lfw[k] for k in ("accuracy", "accuracy_se", "roc_auc", "tar_at_far")}
        for step in log["steps"]:
            step.pop("lfw", None)
    path = write_model(out, quant, manifest)
    if final:
        log["threshold"] = hold_threshold(path, lfw_dir, pairs) or {"threshold": manifest.threshold,
                                                                      "source": manifest.threshold_source}
    from edgeface.runtime.ops_profile import off_xnnpack

    log["not_on_xnnpack"] = {"float model": off_xnnpack(content), "quantized": off_xnnpack(quant)}
    left: dict[str, int] = {}  # ops the recipe could not quantize (or --max-drop kept): they run in float
    for op in list_ops(read_graph(quant)):
        if op.precision == "float32" and op.kind not in ("QUANTIZE", "DEQUANTIZE") and recipe in STATIC:
            left[op.kind] = left.get(op.kind, 0) + 1
    log["left_in_float"] = left
    log.update(out=str(path), size_bytes=path.stat().st_size, float_size_bytes=len(content))
    return log
