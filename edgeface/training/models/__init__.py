"""Training half: the model registry. Importing this package registers every architecture."""

from edgeface.training.models import dlib_resnet, mobilefacenet, tiny, vgg  # noqa: F401  (registration side effect)
from edgeface.training.models.registry import ARCHITECTURES, build_model, count_flops, describe

__all__ = ["ARCHITECTURES", "build_model", "count_flops", "describe"]
