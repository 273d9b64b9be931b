"""Training: ``TrainConfig``, ``fit()``, ``evaluate()`` and the presets.

>>> from convnetpy.train import TrainConfig
>>> TrainConfig(epochs=0)
Traceback (most recent call last):
...
ValueError: TrainConfig: epochs must be at least 1, got 0
"""

from .config import PRESETS, TrainConfig, preset
from .loop import TrainingError, evaluate, fit

__all__ = ["TrainConfig", "fit", "evaluate", "TrainingError", "PRESETS", "preset"]
