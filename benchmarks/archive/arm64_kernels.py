"""Why int8 embeddings differ between arm64 and x86: the same crops through three kernel families on both.

    sudo deploy/emulate-pi.sh && python benchmarks/archive/arm64_kernels.py [--crops 50]
-> results/arm64_kernels.json

``int8`` runs on XNNPACK, ``int8-reference`` on LiteRT's built-in optimized kernels, ``int8-portable`` on its plain C
reference kernels (BUILTIN_REF, ~75x slower). If the portable kernels agree bit for bit across the machines while the
optimized ones do not, the difference is the optimized kernels' rounding, not emulation and not edgeface.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from arm64 import WORK, agreement, embed_here, in_root
from common import save

VARIANTS = ["int8", "int8-reference", "int8-portable"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(os.environ.get(
        "EDGEFACE_PI_ROOT", Path.home() / ".cache" / "edgeface" / "pi-root")))
    parser.add_argument("--crops", type=int, default=50)
    args = parser.parse_args()
    started = time.time()
    host = args.root / WORK.lstrip("/")
    if not (host / "crops.npy").exists():
        raise SystemExit(f"no aligned crops in {host}: run benchmarks/arm64.py first")
    shutil.copy(Path(__file__).with_name("arm64.py"), host / "arm64.py")
    in_root(args.root, "python", f"{WORK}/arm64.py", "embed", f"{WORK}/crops.npy", f"{WORK}/kernels-arm64.npz",
            ",".join(VARIANTS), str(args.crops))
    embed_here(str(host / "crops.npy"), str(host / "kernels-x86.npz"), VARIANTS, args.crops)
    arm = np.load(host / "kernels-arm64.npz", allow_pickle=False)
    x86 = np.load(host / "kernels-x86.npz", allow_pickle=False)
    result = {"crops": args.crops,
              "arm64_vs_x86": {v: agreement(arm[v], x86[v]) for v in VARIANTS},
              "portable_bit_identical": bool(np.array_equal(arm["int8-portable"], x86["int8-portable"])),
              "x86_xnnpack_vs_portable": agreement(x86["int8"], x86["int8-portable"]),
              "arm64_xnnpack_vs_portable": agreement(arm["int8"], arm["int8-portable"])}
    save("arm64_kernels.json", result, started)
    print(result, file=sys.stderr)


if __name__ == "__main__":
    main()
