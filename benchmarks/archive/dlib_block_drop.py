"""Which of dlib's residual blocks can go: LFW of the fine-tuned network with blocks dropped, untrained.

    python benchmarks/archive/dlib_block_drop.py [--model ~/.cache/edgeface/dlib-ft2/model.keras]

Each of the ten blocks that keep their input's size is dropped alone (it then passes its input on unchanged), then
the four the fast variant drops (``dlib_port.FAST_DROP``) together at 150 and at 124 px. The network is run in Keras,
float, on YuNet's dlib chips of LFW View 2 (10 folds): no fine-tuning, what each cut costs as it is. Answers why
``dlib-resnet-fast`` drops the 128- and 256-channel blocks. -> results/dlib_block_drop.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import LFW, PAIRS, save

import edgeface.training.train.dlib_port as port
from edgeface.evaluate.lfw import evaluate_lfw
from edgeface.manifest import load_manifest
from edgeface.training.models.dlib_resnet import build_port
from edgeface.training.models.registry import build_model, count_flops
from edgeface.training.train.keras_embedder import KerasEmbedder
from edgeface.training.train.keras_io import load_keras


def dropped(trained, drop: tuple[str, ...], size: int):
    """dlib's network without ``drop`` at ``size`` px, every other layer's weights from ``trained``."""
    model = build_port(size, 128, 1.0, drop)
    port.copy_without_blocks(trained, model, drop)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path.home() / ".cache" / "edgeface" / "dlib-ft2" / "model.keras")
    args = parser.parse_args()
    started = time.time()
    trained, manifest = load_keras(args.model), load_manifest(args.model)
    same_size = tuple(name for name, down in port.BLOCKS if not down)
    plan = [((), 150), *(((name,), 150) for name in same_size), (port.FAST_DROP, 150), (port.FAST_DROP, 124)]
    base = count_flops(build_model("dlib-resnet"))
    rows = []
    for drop, size in plan:
        model = dropped(trained, drop, size)
        report = evaluate_lfw(KerasEmbedder(model, name="+".join(drop) or "none", spec=manifest.input,
                                            alignment=manifest.alignment), LFW, PAIRS)
        removed = round(1 - count_flops(model) / base, 4)
        rows.append({"dropped": list(drop), "input_size": size, "flops_removed": removed,
                     "accuracy": report["accuracy"], "accuracy_se": report["accuracy_se"],
                     "roc_auc": report["roc_auc"], "tar_at_far_1e-3": report["tar_at_far"]["0.001"]})
        print(f"{'+'.join(drop) or 'none'} at {size} px: -{100 * rows[-1]['flops_removed']:.1f} % FLOPs, LFW "
              f"{100 * report['accuracy']:.2f} %", flush=True)
    save("dlib_block_drop.json", {"model": str(args.model), "rows": rows}, started)


if __name__ == "__main__":
    main()
