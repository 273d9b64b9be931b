"""Layers and containers with PyTorch's names, arguments and state_dict keys."""

from . import functional, init
from .activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleDict, ModuleList, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .flatten import Flatten
from .linear import Identity, Linear
from .loss import CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module, Parameter, StateDictError
from .normalization import BatchNorm1d, BatchNorm2d, SyncBatchNorm
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from .tta import TTA

__all__ = [
    "functional", "init", "Module", "Parameter", "StateDictError", "Sequential", "ModuleList",
    "ModuleDict",
    "Identity", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
    "Linear", "Flatten", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax",
    "LogSoftmax",
    "BatchNorm1d", "BatchNorm2d", "SyncBatchNorm", "Dropout", "CrossEntropyLoss", "NLLLoss",
    "MSELoss", "TTA",
]
