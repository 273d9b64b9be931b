"""Optimizers (SGD, Adam, AdamW, RMSprop) and learning-rate schedules, with torch.optim's
names, defaults, update rules and state_dict layout."""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]
