"""edgeface: make face-recognition models small and fast, prove accuracy on the exported file, run them on the edge."""

__version__ = "0.1.0"

import os as _os

# OpenCV reads its decoder pixel limit once, when cv2 is first imported; setting it here, before any edgeface module
# imports cv2, makes it hold in every process (spawned data-prepare workers included). edgeface.vision.image also
# checks every header against EDGEFACE_MAX_PIXELS before decoding.
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", _os.environ.get("EDGEFACE_MAX_PIXELS", "50000000"))
