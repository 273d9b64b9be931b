"""Training: ``TrainConfig`` and the presets, ``fit()`` (the loop, loop.py) composed of
callbacks (callbacks.py) over a ``RunState`` (state.py), ``evaluate()``,
``load_trained()`` for a model back from its checkpoint, and the training-health records
(``HealthMonitor``, ``read_health``; health/), the learning-rate range test (``lr_find``,
``lr_find_config``; lr_find.py) and TensorBoard logs (``TensorBoardLogger``;
tensorboard.py).

>>> from convnetpy.train import TrainConfig
>>> TrainConfig(epochs=0)
Traceback (most recent call last):
...
ValueError: TrainConfig: epochs must be at least 1, got 0
"""

from .callbacks import (
                        Callback,
                        Checkpointing,
                        DashboardMonitor,
                        EarlyStopping,
                        EpochLog,
                        Interrupt,
                        LRSchedule,
                        Progress,
                        RunLimits,
                        StepLog,
                        default_callbacks,
)
from .config import PRESETS, TrainConfig, preset
from .health import HealthMonitor, read_health
from .loop import TrainingError, evaluate, fit, train_one_epoch
from .lr_find import LRFindResult, lr_find, lr_find_config
from .recipe import Trained, load_trained, transforms_for
from .state import RunState
from .tensorboard import TensorBoardLogger

__all__ = ["TrainConfig", "fit", "evaluate", "train_one_epoch", "TrainingError", "PRESETS",
           "preset", "RunState", "Callback", "Checkpointing", "DashboardMonitor",
           "EarlyStopping", "EpochLog", "Interrupt", "LRSchedule", "Progress", "RunLimits",
           "StepLog", "default_callbacks", "load_trained", "Trained", "transforms_for",
           "HealthMonitor", "read_health", "lr_find", "lr_find_config", "LRFindResult",
           "TensorBoardLogger"]
