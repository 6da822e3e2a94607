"""The model that ships inside the package and is used whenever a command is given no model."""

from __future__ import annotations

from pathlib import Path

from edgeface.errors import EdgefaceError

ASSETS = Path(__file__).parent / "assets"
DEFAULT_NAME = "edgeface-default.tflite"


def default_model_path(name: str = DEFAULT_NAME) -> Path:
    path = ASSETS / name
    if not path.exists():
        raise EdgefaceError(f"the default model {name} is missing from this install; pass a model path")
    return path
