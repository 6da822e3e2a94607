"""Weight clustering (TFMOT): each Conv2D/Dense kernel keeps only K distinct values, which compresses well
(gzip) and composes with int8; ``preserve_sparsity`` keeps an earlier pruning's zeros."""

from __future__ import annotations

from edgeface.errors import EdgefaceError
from edgeface.training.compress.finetune import FaceSet, finetune
from edgeface.training.compress.prune import PRUNABLE, check_supported
from edgeface.training.tf_setup import keras


def cluster_step(clusters: int, preserve_sparsity: bool, epochs: float) -> dict:
    """The manifest chain's record of a weight clustering."""
    return {"step": "cluster", "clusters": clusters, "preserve_sparsity": preserve_sparsity, "epochs": epochs}


def cluster(model: keras.Model, clusters: int, faces: FaceSet, preserve_sparsity: bool = False,
            epochs: float = 1.0, batch: int = 64, lr: float = 2e-4) -> keras.Model:
    import tensorflow_model_optimization as tfmot

    if clusters < 2:
        raise EdgefaceError(f"--clusters must be at least 2, got {clusters}")
    check_supported(model)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    params = {"number_of_clusters": clusters,
              "cluster_centroids_init": tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS,
              "preserve_sparsity": preserve_sparsity}

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, PRUNABLE) and not isinstance(layer, keras.layers.DepthwiseConv2D):
            return tfmot.clustering.keras.cluster_weights(layer, **params)
        return layer

    clustered = keras.models.clone_model(clone, clone_function=wrap)
    finetune(clustered, faces, epochs, batch, lr)
    return tfmot.clustering.keras.strip_clustering(clustered)
