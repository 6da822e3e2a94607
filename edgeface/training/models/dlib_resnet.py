"""dlib's ResNet face descriptor as a trainable architecture, starting from its own public-domain weights.

Unlike the other architectures it is never trained from scratch: ``build`` returns the network dlib trained on ~3 M
faces (rebuilt from face-api's copy, ``edgeface.training.train.dlib_port``), so ``distill --arch dlib-resnet``
fine-tunes it.
It sees dlib's 150x150 chip aligned from YuNet's points (``yunet-dlib150``), raw RGB 0..255 in.
"""

from __future__ import annotations

from edgeface.errors import EdgefaceError
from edgeface.training.models.registry import register
from edgeface.training.tf_setup import keras
from edgeface.training.train.dlib_port import DLIB_INPUT, drop_step, port_step
from edgeface.vision.detector_options import DLIB_CHIP_ALIGNMENT
from edgeface.vision.embed import DLIB_CHIP


@register("dlib-resnet", "dlib's ResNet descriptor (public domain), pretrained; 150x150 dlib chip, raw RGB in",
          input_spec=DLIB_INPUT, alignment=DLIB_CHIP_ALIGNMENT, origin=lambda: [port_step()])
def build(input_size: int = DLIB_CHIP, embedding_size: int = 128, width: float = 1.0) -> keras.Model:
    return build_port(input_size, embedding_size, width)


@register("dlib-resnet-fast", "dlib's ResNet without its four 128/256-channel same-size blocks (-27 % FLOPs); "
          "distilled from a trained dlib-resnet", input_spec=DLIB_INPUT, alignment=DLIB_CHIP_ALIGNMENT,
          origin=lambda: [port_step(), drop_step()])
def build_fast(input_size: int = DLIB_CHIP, embedding_size: int = 128, width: float = 1.0) -> keras.Model:
    from edgeface.training.train.dlib_port import FAST_DROP

    return build_port(input_size, embedding_size, width, FAST_DROP)


def build_port(input_size: int, embedding_size: int, width: float, drop: tuple[str, ...] = ()) -> keras.Model:
    """The port with dlib's weights (less the blocks ``drop`` leaves out); only its own shape can be asked for."""
    from edgeface.training.train.dlib_port import build_dlib_resnet, face_api_weights, read_tfjs_weights

    if not 64 <= input_size <= DLIB_CHIP or embedding_size != 128 or width != 1.0:
        raise EdgefaceError(f"dlib-resnet is dlib's trained network: 64 to {DLIB_CHIP} px input (its chip resized), "
                            f"128-d, width 1 only (got {input_size}, {embedding_size}-d, width {width})")
    return build_dlib_resnet(read_tfjs_weights(face_api_weights()), raw_rgb=True, input_size=input_size, drop=drop)
