"""Optimizers (SGD, Adam, AdamW, RMSprop) and learning-rate schedules, with torch.optim's
names, defaults, update rules and state_dict layout; Lookahead around any of them, and
weight averages (swa_utils.AveragedModel: SWA, EMA)."""

from . import lr_scheduler, swa_utils
from .adam import Adam, AdamW
from .lookahead import Lookahead, cubic_alpha
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Lookahead", "cubic_alpha",
           "lr_scheduler", "swa_utils"]
