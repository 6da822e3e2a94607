"""edgeface: make face-recognition models small and fast, prove accuracy on the exported file, run them on the edge.

The Python API (``edgeface.load``, ``edgeface.Gallery``) is imported on first use, so ``import edgeface`` and the
command line stay light.
"""

import os as _os

# OpenCV reads its decoder pixel limit once, when cv2 is first imported; setting it here, before any edgeface module
# imports cv2, makes it hold in every process (spawned data-prepare workers included). edgeface.vision.image also
# checks every header against EDGEFACE_MAX_PIXELS before decoding.
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", _os.environ.get("EDGEFACE_MAX_PIXELS", "50000000"))
# FFmpeg's own log lines (a missing H.264 device, a stream's decoder chatter) say nothing edgeface does not report
# itself in one line; EDGEFACE_DEBUG=1 keeps them
if not _os.environ.get("EDGEFACE_DEBUG"):
    _os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

from edgeface.version import __version__

__all__ = ["DetectedFace", "EdgefaceError", "FaceRecognizer", "Gallery", "__version__", "load", "similarity"]


def __getattr__(name: str):
    if name in ("load", "Gallery", "FaceRecognizer", "DetectedFace", "similarity"):
        from edgeface import api

        return getattr(api, name)
    if name == "EdgefaceError":
        from edgeface.errors import EdgefaceError

        return EdgefaceError
    raise AttributeError(f"module 'edgeface' has no attribute {name!r}")
