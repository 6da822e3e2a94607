"""What is inside a .tflite file: tensors, quantization, backend, manifest."""

from __future__ import annotations

from pathlib import Path

from edgeface.files import sha256_file
from edgeface.manifest import load_manifest
from edgeface.runtime.flops import count_tflite_flops
from edgeface.runtime.interpreter import Model


def model_info(model: str | Path | None) -> dict:
    from edgeface.default_model import resolve_model

    model = resolve_model(model)
    loaded = Model(model)
    manifest = load_manifest(model)
    tensors = [{"role": role, "name": t.name, "shape": list(t.shape), "dtype": t.dtype, "scale": t.scale,
                "zero_point": t.zero_point}
               for role, specs in (("input", loaded.inputs), ("output", loaded.outputs)) for t in specs]
    return {
        "file": str(model),
        "sha256": sha256_file(model),
        "size_bytes": Path(model).stat().st_size,
        "backend": loaded.backend,
        # counted from the file's own ops, whatever its manifest says (an imported file has none; a flip file twice)
        "graph_flops": count_tflite_flops(model),
        "tensors": tensors,
        "manifest": manifest.to_dict() if manifest else None,
    }
