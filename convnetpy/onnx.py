"""ONNX exchange (the ``onnx`` extra: onnx + onnxruntime): ``export(model, example_input,
path, opset=17, classes=...)`` writes a checked ONNX file with a dynamic batch axis that ONNX
Runtime runs to the same outputs; ``load(path)`` builds a convnetpy model from one (its
layers real convnetpy modules, so it summarises, explains and fine-tunes); ``compare`` runs
a graph in ONNX Runtime against a convnetpy model.

>>> from convnetpy.onnx import export, load
"""

from .io.onnx_export import MissingOnnx, compare, export
from .io.onnx_load import SUPPORTED_OPS, OnnxModel, load

__all__ = ["export", "load", "compare", "OnnxModel", "SUPPORTED_OPS", "MissingOnnx"]
