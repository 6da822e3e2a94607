"""Low-rank factorisation: a Dense or Conv2D kernel W, seen as a matrix (k*k*in x out), becomes two thinner
layers U (k*k*in x r) and V (r x out) from its truncated SVD, wherever that saves parameters
(r * (k*k*in + out) < k*k*in * out). For a k x k conv, U is a k x k conv with r filters (keeping the stride and
padding) and V a 1x1 conv: the classic spatial-then-pointwise split.
"""

from __future__ import annotations

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.training.compress.finetune import FaceSet, finetune
from edgeface.training.compress.prune import check_supported
from edgeface.training.tf_setup import keras


def choose_rank(singular: np.ndarray, rank: int | None, energy: float | None) -> int:
    if rank is not None:
        return max(1, min(rank, len(singular)))
    if energy is None or not 0 < energy <= 1:
        raise EdgefaceError("give --rank R or --energy E (0 < E <= 1)")
    cumulative = np.cumsum(singular**2) / np.sum(singular**2)
    return int(np.searchsorted(cumulative, energy) + 1)


def lowrank_step(rank: int | None, energy: float | None, epochs: float) -> dict:
    """The manifest chain's record of a low-rank factorisation."""
    return {"step": "lowrank", "rank": rank, "energy": energy, "epochs": epochs}


def lowrank(model: keras.Model, faces: FaceSet | None, rank: int | None = None, energy: float | None = None,
            epochs: float = 1.0, batch: int = 64, lr: float = 3e-4) -> tuple[keras.Model, list[dict]]:
    check_supported(model)
    plan: dict[str, tuple[np.ndarray, np.ndarray, list[np.ndarray]]] = {}
    report = []
    for layer in model.layers:
        if type(layer) not in (keras.layers.Conv2D, keras.layers.Dense):
            continue
        weights = layer.get_weights()
        kernel = weights[0].reshape(-1, weights[0].shape[-1])
        n_in, n_out = kernel.shape
        u, s, vt = np.linalg.svd(kernel, full_matrices=False)
        r = choose_rank(s, rank, energy)
        if r * (n_in + n_out) >= n_in * n_out:
            continue
        plan[layer.name] = (u[:, :r] * s[:r], vt[:r], weights[1:])
        report.append({"layer": layer.name, "shape": [n_in, n_out], "rank": r,
                       "params_before": n_in * n_out, "params_after": r * (n_in + n_out)})
    if not plan:
        raise EdgefaceError("no Dense or Conv2D layer would get smaller at that rank/energy")

    def split(layer: keras.layers.Layer) -> keras.layers.Layer:
        cfg = layer.get_config()
        if cfg["name"] not in plan:
            return layer.__class__.from_config(cfg)
        r = plan[cfg["name"]][1].shape[0]
        if isinstance(layer, keras.layers.Dense):
            first = keras.layers.Dense(r, use_bias=False, name=f"{cfg['name']}_u")
            second = keras.layers.Dense(cfg["units"], use_bias=cfg["use_bias"], name=f"{cfg['name']}_v")
        else:
            first = keras.layers.Conv2D(r, cfg["kernel_size"], strides=cfg["strides"], padding=cfg["padding"],
                                        dilation_rate=cfg["dilation_rate"], use_bias=False, name=f"{cfg['name']}_u")
            second = keras.layers.Conv2D(cfg["filters"], 1, use_bias=cfg["use_bias"], name=f"{cfg['name']}_v")
        return keras.Sequential([first, second], name=cfg["name"])

    factored = keras.models.clone_model(model, clone_function=split)
    for layer in model.layers:
        target = factored.get_layer(layer.name)
        if layer.name in plan:
            us, v, rest = plan[layer.name]
            first, second = target.layers
            first.set_weights([us.reshape(first.get_weights()[0].shape)])
            second.set_weights([v.reshape(second.get_weights()[0].shape), *rest])
        elif layer.get_weights():
            target.set_weights(layer.get_weights())
    if faces is not None:
        finetune(factored, faces, epochs, batch, lr)
    return factored, report
