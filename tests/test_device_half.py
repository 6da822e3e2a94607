"""The device half never imports TensorFlow, and nothing deserialises untrusted data."""

import re
import subprocess
import sys
from pathlib import Path

from conftest import BLOCK_TF, ROOT

DEVICE_MODULES = [
    "edgeface.cli", "edgeface.runtime.interpreter", "edgeface.runtime.bench", "edgeface.runtime.flops",
    "edgeface.runtime.info", "edgeface.vision.detect", "edgeface.vision.align", "edgeface.vision.embed",
    "edgeface.vision.pipeline", "edgeface.evaluate.metrics", "edgeface.evaluate.lfw", "edgeface.data.prepare",
    "edgeface.data.targets", "edgeface.recognize.gallery", "edgeface.recognize.enroll", "edgeface.recognize.loop",
    "edgeface.recognize.capture", "edgeface.recognize.profile", "edgeface.manifest", "edgeface.default_model",
]


def test_device_modules_import_with_tensorflow_blocked():
    code = BLOCK_TF + "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in DEVICE_MODULES)
    code += "assert not any(m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras') for m in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_training_commands_say_what_to_install_when_tensorflow_is_missing():
    code = BLOCK_TF + "from edgeface.cli import main\nsys.argv = ['edgeface', 'models']\nmain()\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "pip install 'edgeface[train]'" in done.stderr


def test_no_pickle_anywhere_in_the_package():
    offenders = []
    for path in sorted((ROOT / "edgeface").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py")):
        text = path.read_text()
        if re.search(r"^\s*(import pickle|from pickle|import cPickle|import dill|import joblib)", text, re.M) or \
                "allow_pickle=True" in text or re.search(r"np\.load\((?![^)]*allow_pickle=False)", text):
            offenders.append(str(Path(path).relative_to(ROOT)))
    assert offenders == []
