"""The models that ship inside the package: the default, used whenever a command is given no model, and the named
ones a command takes by name (``--model small``)."""

from __future__ import annotations

import functools
from pathlib import Path

from edgeface.errors import EdgefaceError

ASSETS = Path(__file__).parent / "assets"
DEFAULT_NAME = "edgeface-default.tflite"
# name -> file in ASSETS
NAMED_MODELS = {
    "default": DEFAULT_NAME,
    # stage 3: MobileFaceNet 0.75 distilled from dlib, 0.8 MB int8, for boards short of memory (see the README)
    "small": "edgeface-small.tflite",
    # dlib's network less four residual blocks at 124 px (-50 % FLOPs), distilled from the default's: 1.6x
    # single's speed at 0.65 pp less LFW, faster and 2.1 pp better than small (see the README)
    "fast": "edgeface-fast.tflite",
    # dlib's network with dlib's own public-domain weights, untouched: the default until it was fine-tuned for
    # harsh light on research data (CelebA, UTKFace, LFW), for whom those data's terms rule the default out
    "port": "edgeface-port.tflite",
}
# names kept for what they named before: ``single`` was the default's network at one pass a face, beside a default
# that averaged every face with its mirror; the default now runs one pass a probe itself (flip-averaged templates)
ALIASES = {"single": "default"}
FLOAT_TWINS = {"default", "small"}  # these also ship "<stem>-float32.tflite", named "<name>-float32"
# what each shipped model is for (the README's "which model for which board" says why)
USES = {
    "default": "boards with int8 dot products (Pi 5, Orange Pi 5, x86): the most accurate under harsh light",
    "fast": "video where frames a second matter most: a fine-tuned copy of the network, less four blocks",
    "small": "boards short of memory: the smallest file",
    "port": "dlib's public-domain weights untouched: where the others' research training data's terms rule them out",
    "default-float32": "boards without int8 dot products (Pi 4): float runs faster there",
    "small-float32": "a float source for 'edgeface quantize'",
}


def shipped_names() -> list[str]:
    """Every name a command takes for a shipped model: the named ones and their float32 twins."""
    return [*NAMED_MODELS, *(f"{name}-float32" for name in NAMED_MODELS if name in FLOAT_TWINS)]


def shipped_models() -> list[dict]:
    """Every shipped model by name, from its own file and manifest: file, size, LFW View 2 accuracy and TAR at FAR
    1e-3 measured on that file, threshold, GFLOPs, and what it is for. Light: no interpreter is built."""
    from edgeface.manifest import load_manifest

    rows = []
    for name in shipped_names():
        path = Path(resolve_model(name))
        manifest = load_manifest(path)
        lfw = (manifest.metrics or {}).get("lfw", {}) if manifest else {}
        rows.append({"name": name, "file": path.name, "size_bytes": path.stat().st_size,
                     "lfw_accuracy": lfw.get("accuracy"), "tar_at_far_1e-3": (lfw.get("tar_at_far") or {}).get("0.001"),
                     "threshold": manifest.threshold if manifest else None,
                     "gflops": manifest.flops / 1e9 if manifest and manifest.flops else None,
                     "dtype": manifest.dtype if manifest else None, "use": USES.get(name, "")})
    return rows


def default_model_path(name: str = DEFAULT_NAME) -> Path:
    path = ASSETS / name
    if not path.exists():
        raise EdgefaceError(f"the shipped model {name} is missing from this install; pass a model path")
    return path


DLIB_PORT = "dlib-port"  # dlib's network on LiteRT, run on dlib's own chip (a teacher, not a file)


def canonical_name(text: str) -> str:
    """A shipped model's name as listed: an alias (``single``) is the model it now names."""
    base = text.removesuffix("-float32")
    return ALIASES.get(base, base) + text[len(base):]


def is_named_model(text: str) -> bool:
    """``small``, ``small-float32``, ``default``, ``single``...: a shipped model's name or alias (unless a file of
    that name is here)."""
    name = canonical_name(text)
    base = name.removesuffix("-float32")
    return base in NAMED_MODELS and (base == name or base in FLOAT_TWINS) and not Path(text).exists()


def resolve_model(model: str | Path | None) -> str | Path:
    """A model argument as given, or the shipped file it names: None is the default, ``small`` (and
    ``small-float32``) a named model, ``single`` an alias (``ALIASES``); anything else (a path, ``dlib``) passes
    through."""
    if model is None:
        return default_model_path()
    text = str(model)
    if is_named_model(text):
        text = canonical_name(text)
        base = text.removesuffix("-float32")
        name = NAMED_MODELS[base]
        return default_model_path(name if base == text else name.replace(".tflite", "-float32.tflite"))
    return model


@functools.cache
def shipped_identity(name: str) -> str:
    """What a gallery enrolled with the shipped model ``name`` is bound to (``vision.embed.embedder_identity`` of its
    embedder), from the file and its manifest, without building an interpreter."""
    from edgeface.manifest import load_manifest
    from edgeface.tflite_metadata import gallery_identity, model_identity

    path = Path(resolve_model(name))
    content = path.read_bytes()  # read once: the manifest is inside these bytes
    manifest = load_manifest(path, content=content)
    return gallery_identity(model_identity(content), manifest is not None and manifest.templates == "flip")


def shipped_name_of(identity: str) -> str | None:
    """The shipped model a gallery bound to ``identity`` was enrolled with, by its name now (None: none ships). A
    gallery enrolled with an earlier default remembers "default"; when the default changes, its model usually still
    ships under another name (the dlib port as ``port``), and using that keeps the gallery working unchanged."""
    return next((name for name in shipped_names() if shipped_identity(name) == identity), None)
