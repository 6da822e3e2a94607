"""Training half only: import TensorFlow with Keras 2 (tf_keras), which TFMOT requires.

``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is first imported; every training-half module gets
``tf`` and ``keras`` from here so that can never be forgotten.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")



def _quiet_import():
    """Import TensorFlow with C++ start-up chatter (oneDNN, CUDA probing) kept off the user's terminal."""
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow as tf
        import tf_keras as keras

        tf.config.list_physical_devices("GPU")  # the CUDA probe logs an error on CPU-only machines
        return tf, keras
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


try:
    tf, keras = _quiet_import()
except ImportError as exc:  # pragma: no cover - exercised on device installs
    from edgeface.errors import EdgefaceError

    raise EdgefaceError(f"this command needs the training half: pip install 'edgeface[train]' ({exc})") from None

__all__ = ["keras", "tf"]
