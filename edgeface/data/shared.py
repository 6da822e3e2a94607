"""Where the project's own tests and benchmarks find the shared face data: LFW View 2, CelebA, ORL, UTKFace, the demo
media and the two peer models. ``$EDGEFACE_SHARED``, else ``shared/`` beside the checkout (an installed copy has no
checkout: set the variable). Read only: nothing is ever written there or copied from it into the repository.

One place because the test fixtures, every benchmark script and the Makefile read the same folders.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("EDGEFACE_SHARED", Path(__file__).resolve().parents[3] / "shared"))
DATA = SHARED / "data"
LFW = DATA / "lfw" / "lfw-deepfunneled"
PAIRS = DATA / "lfw" / "pairs.txt"
MEDIA = DATA / "media"
CELEBA = DATA / "celeba-subset"
PEER_FLOAT = SHARED / "peers" / "mobilefacenet_float32.tflite"
PEER_UINT8 = SHARED / "peers" / "mobilefacenet_uint8.tflite"
# the peers carry no manifest: their input is RGB 0..255 (normalisation inside the float model, uint8 in the other)
PEER_FLAGS = ("--input-mean", "0", "--input-scale", "1", "--channels", "RGB")
