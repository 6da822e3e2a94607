"""Every closed list of names a user may type, once: the library checks against these tuples, and the CLI's choice
lists (``cli.options``) are generated from them, so ``--help`` and the library can never disagree. Ground floor:
imports nothing, light enough for the CLI's start-up.
"""

from __future__ import annotations

from enum import Enum

from edgeface.alignments import ALIGNMENTS  # noqa: F401 (listed here with the other choices)

LAYOUTS = ("auto", "folders", "flat", "celeba")  # how a face folder names its people (data prepare)
STRATEGIES = ("none", "mirrored", "multiworker")  # tf.distribute strategies (train, distill)
HEADS = ("softmax", "arcface", "cosface")  # classification heads (train)
QAT_MODES = ("qat", "qat-prune-preserve")  # quantization-aware training
QUANT_MODES = ("dynamic", "float16", "int8", *QAT_MODES)  # quantize a Keras model
RECIPES = ("dynamic", "weight-only", "int8", "int16x8")  # the TF-free quantizer for .tflite files
MODES = ("float32", "float16", "dynamic", "int8")  # export precisions
IO_TYPES = ("int8", "float")  # an int8 file's input/output tensors
TARGETS = ("latency", "size")  # what an optimisation search ranks by
EXPORT_FORMATS = ("tflite",)
# how enrolled templates are made (a manifest's ``templates``): one pass like every probe, or face and mirror averaged
TEMPLATE_MODES = ("single", "flip")
VIEW_KINDS = ("camera", "harsh")  # training views (data views): everyday damage, or harsh light


def choice_enum(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum of ``values`` for Typer (members named with ``_`` for ``-``): the CLI's view of a tuple."""
    return Enum(name, {v.replace("-", "_"): v for v in values}, type=str)  # type: ignore[return-value]
