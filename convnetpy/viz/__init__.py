"""Looking inside networks: ``probe`` (one example's activations, gradients, receptive
fields and unit explanations), ``attribution`` (why the model chose a class: saliency,
SmoothGrad, Grad-CAM, occlusion, integrated gradients), ``synthesis`` (what a class looks
like to it, and fooling images), ``feature_space`` (penultimate features, nearest neighbours,
2-D embeddings), ``render`` (Pillow pictures of maps, filters and heat-map overlays) and
``plots`` (every chart, with matplotlib)."""

from . import attribution, feature_space, probe, render, synthesis
from .attribution import (
    explain,
    grad_cam,
    integrated_gradients,
    last_conv,
    occlusion,
    saliency,
    smoothgrad,
    upsample_bilinear,
)
from .feature_space import embed, features, nearest_neighbours, pca
from .probe import LayerProbe, explain_unit
from .synthesis import ClassImage, FoolResult, class_image, fool

__all__ = ["probe", "render", "attribution", "synthesis", "feature_space", "LayerProbe",
           "explain_unit", "saliency", "smoothgrad", "grad_cam", "occlusion",
           "integrated_gradients", "explain", "last_conv", "upsample_bilinear", "class_image",
           "ClassImage", "fool", "FoolResult", "features", "nearest_neighbours", "pca", "embed"]
