"""Helpers every benchmark script shares: the machine description, running edgeface commands, saving results."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edgeface import __version__
from edgeface.data.shared import CELEBA, DATA, LFW, MEDIA, PAIRS, PEER_FLAGS, SHARED  # noqa: F401 (the scripts' names)
from edgeface.files import portable, write_json

RESULTS = Path(__file__).parent / "results"
# what the default models are trained (or calibrated) on: name -> (source folder, `edgeface data prepare` flags);
# labelled CelebA and ORL, the LFW people who are not in pairs.txt, unlabelled UTKFace
TUNE_IDENTITIES = Path.home() / ".cache" / "edgeface" / "celeba-tune-identities.txt"  # written by tune_half_list()
TRAINING_SOURCES = {
    "celeba": (CELEBA, ["--identities", str(CELEBA / "identities.txt"), "--prefix", "celeba_"]),
    "orl": (DATA / "orl", ["--prefix", "orl_"]),
    "lfw-outside-pairs": (LFW, ["--exclude-pairs", str(PAIRS), "--prefix", "lfw_"]),
    "utkface-subset": (DATA / "utkface-subset", ["--layout", "flat"]),
    "utkface-more": (DATA / "utkface-more", ["--layout", "flat"]),
}

# sources a recipe may choose instead: CelebA's tune half only, so that its held half stays a test (written when used)
CHOSEN_SOURCES = {**TRAINING_SOURCES,
                  "celeba-tune": (CELEBA, ["--identities", str(TUNE_IDENTITIES), "--prefix", "celeba_"])}


def in_tune_half(identity):
    """CelebA's identities split once (an id or an array of them): even ids are the tune half (thresholds and gates
    are placed there, and a robust fine-tuning may learn from them), odd ids the held half no figure is tuned on."""
    return identity % 2 == 0


def tune_half_list() -> Path:
    """The CelebA identities list cut to the tune half (``TUNE_IDENTITIES``), for ``data prepare --identities``."""
    rows = [line.split() for line in (CELEBA / "identities.txt").read_text().splitlines() if line.strip()]
    TUNE_IDENTITIES.parent.mkdir(parents=True, exist_ok=True)
    TUNE_IDENTITIES.write_text("".join(f"{name} {i}\n" for name, i in rows if in_tune_half(int(i))))
    return TUNE_IDENTITIES


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("numpy", "ai_edge_litert", "cv2", "tensorflow"):
        try:
            mod = __import__(pkg) if pkg != "tensorflow" or "tensorflow" in sys.modules else None
            versions[pkg] = getattr(mod, "__version__", "?") if mod else None
        except ImportError:
            versions[pkg] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "edgeface": __version__, "packages": {k: v for k, v in versions.items() if v}}


def edgeface_json(*args: str) -> dict:
    """Run ``edgeface ARGS --json`` in a subprocess (exactly what a user runs) and parse its output."""
    cmd = [sys.executable, "-m", "edgeface", *args, "--json"]
    print("$", shlex.join(["edgeface", *args, "--json"]), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {shlex.join(cmd)}")
    return json.loads(done.stdout)


def step_runner(steps: dict[str, dict]) -> Callable[..., dict]:
    """``step(name, *cli)``: run ``edgeface CLI --json`` and record its wall time and command in ``steps``."""

    def step(name: str, *cli: str) -> dict:
        t = time.time()
        result = edgeface_json(*cli)
        steps[name] = {"seconds": round(time.time() - t, 1), "command": "edgeface " + " ".join(cli) + " --json"}
        return result

    return step


def save(name: str, payload: dict, started: float) -> Path:
    path = RESULTS / name
    # paths as ~/... or relative to the checkout: the builder's file system stays out of committed results
    doc = portable({"command": shlex.join(["python", *sys.argv]), "machine": machine(),
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "wall_seconds": round(time.time() - started, 1),
                    **payload})
    write_json(path, doc)
    print(f"wrote {path}", file=sys.stderr)
    return path


def install_gates(model: str, gates: dict, replaces: tuple[str, ...] = ()) -> list[str]:
    """Write ``gates`` into a shipped file's manifest and its float twin's (one network, one set of limits), dropping
    the keys in ``replaces`` first (limits a new calibration no longer sets); returns the files written."""
    from edgeface.default_model import FLOAT_TWINS, resolve_model
    from edgeface.manifest import load_manifest, save_manifest

    done = []
    for name in [model, *([f"{model}-float32"] if model in FLOAT_TWINS else [])]:
        path = resolve_model(name)
        manifest = load_manifest(path)
        manifest.gates = {**{k: v for k, v in manifest.gates.items() if k not in replaces}, **gates}
        save_manifest(path, manifest)
        done.append(Path(path).name)
    return done
