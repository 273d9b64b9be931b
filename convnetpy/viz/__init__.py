"""Looking inside networks: ``probe`` (one example's activations, gradients, receptive
fields and unit explanations) and ``render`` (Pillow pictures of maps and filters)."""

from . import probe, render
from .probe import LayerProbe, explain_unit

__all__ = ["probe", "render", "LayerProbe", "explain_unit"]
