"""The device half never imports TensorFlow, and nothing deserialises untrusted data."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BLOCK_TF, MEDIA, ROOT, needs_shared

# the folders say which half a module is in: edgeface/training/ is the training half; the command line (cli/ and
# ``python -m edgeface``) is the layer above both, whose training commands import the training half inside
# themselves; every other module is the device half
TRAINING_HALF = "edgeface.training"
TOP_LAYER = ("edgeface.cli", "edgeface.__main__")


def in_folder(module: str, folder: str) -> bool:
    """Whole module names, never prefixes (``edgeface.report`` once caught ``edgeface.report_format`` this way)."""
    return module == folder or module.startswith(folder + ".")


def in_training_half(module: str) -> bool:
    return in_folder(module, TRAINING_HALF)


def device_modules() -> list[str]:
    """Every module of the package outside the training half: found by walking the source tree, so a new device
    module is covered the day it is added."""
    names = []
    for path in sorted((ROOT / "edgeface").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not in_training_half(name) and not any(in_folder(name, top) for top in TOP_LAYER):
            names.append(name)
    return names


DEVICE_MODULES = device_modules()


def test_the_walk_finds_the_device_half():
    assert {"edgeface.vision.yunet", "edgeface.vision.blazeface", "edgeface.vision.detect", "edgeface.api",
            "edgeface.evaluate.scenes", "edgeface.recognize.loop", "edgeface.quantize.tflite_quantize",
            "edgeface.serve.app"} <= set(DEVICE_MODULES)
    assert not any(m.startswith("edgeface.training.train") for m in DEVICE_MODULES)
    assert "edgeface.tables" in DEVICE_MODULES and "edgeface.training.compare" not in DEVICE_MODULES


@needs_shared
def test_yunet_detects_and_aligns_with_tensorflow_blocked():
    """The default detector runs (detect, BlazeFace landmarks, align, embed) with TensorFlow unimportable."""
    code = BLOCK_TF + """
import numpy as np, sys
from edgeface.vision.detect import FaceFinder
from edgeface.vision.align import align_face
from edgeface.vision.embed import load_embedder
from edgeface.vision.image import read_image
embedder = load_embedder(None)
image = read_image(sys.argv[1])
faces = FaceFinder("yunet", alignment=embedder.alignment).find(image)
assert faces, "no face"
vec = embedder.embed(align_face(image, faces[0])[None])
assert vec.shape == (1, embedder.size) and abs(float(np.linalg.norm(vec)) - 1) < 1e-4
assert not any(m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras') for m in sys.modules)
"""
    photo = MEDIA / "probes" / "obama3.jpg"
    done = subprocess.run([sys.executable, "-c", code, str(photo)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_device_modules_import_with_tensorflow_blocked():
    code = BLOCK_TF + "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in DEVICE_MODULES)
    code += "assert not any(m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras') for m in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_training_commands_say_what_to_install_when_tensorflow_is_missing(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"PK")  # a file is there: what is missing is TensorFlow
    for args in (["train", str(tmp_path), "--arch", "tiny"], ["export", str(tmp_path / "m.keras"), "-o", "m.tflite"]):
        code = BLOCK_TF + f"from edgeface.cli import main\nsys.argv = ['edgeface', *{args!r}]\nmain()\n"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, args
        assert "pip install 'edgeface[train]'" in done.stderr, args


@pytest.mark.slow  # the first listing builds four networks with TensorFlow
def test_models_lists_the_architectures_from_the_cache_without_tensorflow(tmp_path):
    """The first listing builds the networks (TensorFlow) and keeps their description, keyed by the models' code;
    the next one needs no TensorFlow and gives the same rows, and `tiny` is listed at the size its file builds."""
    import json
    import os

    env = {**os.environ, "EDGEFACE_CACHE": str(tmp_path)}
    face_api = Path(os.environ.get("EDGEFACE_CACHE") or Path.home() / ".cache" / "edgeface") / "teachers" / "face-api"
    if face_api.is_dir():  # dlib's weights, fetched once by npm: not again into the empty cache
        env["EDGEFACE_FACE_API"] = str(face_api)
    first = subprocess.run([sys.executable, "-m", "edgeface", "models", "--architectures", "--json"],
                           capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    rows = json.loads(first.stdout)
    assert {r["name"]: r["embedding"] for r in rows["architectures"]}["tiny"] == 32
    # the shipped models, each by the name every command takes, with the LFW figures of its own file
    assert [r["name"] for r in rows["shipped"]] == ["default", "small", "fast", "port", "default-float32",
                                                    "small-float32"]
    assert all(0.95 < r["lfw_accuracy"] < 1 and 0 < r["threshold"] < 1 for r in rows["shipped"])
    code = BLOCK_TF + ("from edgeface.cli import main\nsys.argv = ['edgeface', 'models', '--architectures', "
                       "'--json']\nmain()\n")
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == rows
    assert len(list((tmp_path / "architectures").glob("*.json"))) == 1


def test_no_pickle_anywhere_in_the_package():
    offenders = []
    for path in sorted((ROOT / "edgeface").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py")):
        text = path.read_text()
        if re.search(r"^\s*(import pickle|from pickle|import cPickle|import dill|import joblib)", text, re.M) or \
                "allow_pickle=True" in text or re.search(r"np\.load\((?![^)]*allow_pickle=False)", text):
            offenders.append(str(Path(path).relative_to(ROOT)))
    assert offenders == []


def import_graph() -> dict[str, set[str]]:
    """Every module's imports of edgeface modules and of TensorFlow, at any depth of its code (inside functions
    too: a lazy import is still an import the device would execute), read from the source's syntax tree."""
    import ast

    paths = {}
    for path in sorted((ROOT / "edgeface").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # from . import x / from ..y import z
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
        graph[name] = {m for m in found if m in paths or m.split(".")[0] in TF_PACKAGES}
    return graph


TF_PACKAGES = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization")
# the one sanctioned edge: a machine with neither LiteRT nor tflite_runtime may opt in to TensorFlow's interpreter
ALLOWED_EDGES = {("edgeface.runtime.interpreter", "tensorflow")}


def test_no_device_module_reaches_training_code_at_any_depth():
    graph = import_graph()
    for a, b in ALLOWED_EDGES:
        graph[a].discard(b)

    def chain_to_training(start: str) -> list[str] | None:
        via: dict[str, str] = {}
        stack, seen = [start], {start}
        while stack:
            here = stack.pop()
            for there in graph.get(here, ()):
                if there in seen:
                    continue
                seen.add(there)
                via[there] = here
                if in_training_half(there) or there.split(".")[0] in TF_PACKAGES:
                    path = [there]
                    while path[-1] != start:
                        path.append(via[path[-1]])
                    return path[::-1]
                stack.append(there)
        return None

    leaks = {m: chain for m in DEVICE_MODULES if (chain := chain_to_training(m))}
    assert leaks == {}, "\n".join(" -> ".join(chain) for chain in leaks.values())
    # the walk is real: the training half does reach TensorFlow through the same graph
    assert chain_to_training("edgeface.training.compress.prune") is not None


def test_the_package_import_graph_has_no_cycle():
    """No module reaches itself through others, at any depth (lazy imports count): every module can be read, tested
    and replaced from the bottom up. A package importing its own submodules is not a cycle."""
    imports = import_graph()
    graph = {m: {n for n in deps if n in imports and n != m} for m, deps in imports.items()}
    done: set[str] = set()

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            here, path = stack.pop()
            for there in sorted(graph.get(here, ())):
                if there == start:
                    return [*path, there]
                if there not in path and there not in done:
                    stack.append((there, [*path, there]))
        return None

    for module in sorted(graph):
        found = cycle_from(module)
        assert found is None, " -> ".join(found)
        done.add(module)


def test_the_manifest_sits_on_the_ground_floor():
    """Reading and writing a model's manifest needs the file's bytes and the alignment and template-mode names, never
    the detectors, the interpreter or the recognition code: what it reaches, at any depth, is the ground floor
    alone."""
    imports = import_graph()
    reached, stack = set(), ["edgeface.manifest"]
    while stack:
        for there in imports.get(stack.pop(), ()):
            if there not in reached:
                reached.add(there)
                stack.append(there)
    assert {m for m in reached if m.startswith("edgeface")} <= {
        "edgeface.alignments", "edgeface.choices", "edgeface.errors", "edgeface.files", "edgeface.tflite_metadata",
        "edgeface.version"}
