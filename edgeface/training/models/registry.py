"""One registry of architectures; every model file has the same shape: ``build(input_size, embedding_size,
width) -> tf_keras.Model`` mapping float input (normalised as ``INPUT_SPEC`` says) to a raw embedding.

Models are plain tf_keras graphs of built-in layers (Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, Add,
Dense) so TFMOT can wrap every layer and the TFLite converter maps them to fast int8 kernels: no PReLU, since
XNNPACK does not run int8 PReLU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from edgeface.errors import EdgefaceError
from edgeface.manifest import InputSpec
from edgeface.training.tf_setup import keras, tf

# pixels -> [-1, 1]; stored in every manifest so runtimes never guess
INPUT_SPEC = InputSpec(size=112, channels="RGB", mean=127.5, scale=1 / 127.5)
# BN statistics follow training quickly (as in InsightFace): short fine-tunes then export consistent models
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[..., keras.Model]
    summary: str
    input_spec: InputSpec = field(default_factory=lambda: INPUT_SPEC)
    alignment: str | None = None  # the chip it sees, when not the ArcFace template (``yunet-dlib150``)
    # where a pretrained architecture's starting weights come from (manifest chain steps, licence included): every
    # model trained from it carries them first
    origin: Callable[[], list[dict]] = field(default=lambda: [])


ARCHITECTURES: dict[str, Architecture] = {}


def register(name: str, summary: str, input_spec: InputSpec = INPUT_SPEC, alignment: str | None = None,
             origin: Callable[[], list[dict]] | None = None) -> Callable:
    def wrap(fn: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        ARCHITECTURES[name] = Architecture(name, fn, summary, input_spec, alignment, origin or (lambda: []))
        return fn

    return wrap


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise EdgefaceError(f"unknown architecture {name!r}; choose one of {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


def build_model(name: str, input_size: int | None = None, embedding_size: int | None = None,
                width: float | None = None) -> keras.Model:
    """Build a registered architecture; ``None`` takes the architecture's own default (width, input size,
    embedding size: what ``edgeface models`` lists is what its file says)."""
    arch = architecture(name)
    kwargs: dict = {"input_size": input_size or arch.input_spec.size}
    if embedding_size is not None:
        kwargs["embedding_size"] = embedding_size
    if width is not None:
        if width <= 0:
            raise EdgefaceError(f"--width must be positive, got {width}")
        kwargs["width"] = width
    return arch.build(**kwargs)


def count_flops(model: keras.Model) -> int:
    """FLOPs of one forward pass (batch 1), counted by TF's profiler on the frozen graph (2 per multiply-add)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    shape = [1, *model.inputs[0].shape[1:]]
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(tf.TensorSpec(shape, tf.float32))
    frozen = convert_variables_to_constants_v2(fn)
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                         options=opts)
    return int(info.total_float_ops)


def describe(name: str, **kwargs: float) -> dict:
    model = build_model(name, **kwargs)  # type: ignore[arg-type]
    return {"name": name, "summary": ARCHITECTURES[name].summary, "params": int(model.count_params()),
            "flops": count_flops(model), "input": list(model.inputs[0].shape[1:]),
            "embedding": int(model.outputs[0].shape[-1])}


def channels(n: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width``, rounded to a multiple of ``divisor`` (SIMD-friendly)."""
    return max(divisor, int(n * width + divisor / 2) // divisor * divisor)


def conv_bn(x: tf.Tensor, filters: int, kernel: int = 1, stride: int = 1, act: bool = True,
            name: str = "") -> tf.Tensor:
    x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}relu")(x) if act else x


def dw_bn(x: tf.Tensor, kernel: int = 3, stride: int = 1, act: bool = True, name: str = "",
          padding: str = "same") -> tf.Tensor:
    x = keras.layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False, name=f"{name}dw")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}dwbn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}dwrelu")(x) if act else x


def embedding_head(x: tf.Tensor, embedding_size: int) -> tf.Tensor:
    """Global depthwise conv over the whole feature map (keeps spatial weighting, unlike average pooling),
    then a linear 1x1 projection to the embedding."""
    x = dw_bn(x, kernel=int(x.shape[1]), act=False, name="gdc_", padding="valid")
    x = keras.layers.Conv2D(embedding_size, 1, use_bias=False, name="embedding_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="embedding_bn")(x)
    return keras.layers.Flatten(name="embedding")(x)
