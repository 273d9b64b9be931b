"""convnetpy: convolutional neural networks from first principles on NumPy.

>>> import convnetpy as cp
>>> from convnetpy import nn
>>> net = nn.Sequential(nn.Conv2d(3, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2))
>>> net(cp.zeros(1, 3, 32, 32)).shape
(1, 16, 16, 16)
"""

from __future__ import annotations

import numpy as _np

from . import functional  # noqa: F401
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .backend.threads import get_num_threads, set_num_threads
from .random import get_rng_state, manual_seed, set_rng_state
from .shape import ShapeError
from .tensor import Tensor, cat, from_numpy, is_tensor, ones, stack, tensor, zeros
from .version import __version__

float32 = _np.float32
float64 = _np.float64
int64 = _np.int64

F = functional

from . import models, nn, optim, runtime  # noqa: E402
from .analysis import Summary, check, summary  # noqa: E402

__all__ = [
    "Tensor", "tensor", "from_numpy", "is_tensor", "zeros", "ones", "cat", "stack",
    "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled", "manual_seed",
    "get_rng_state", "set_rng_state", "ShapeError", "nn", "optim", "F", "functional",
    "float32", "float64", "int64", "__version__", "models", "summary", "Summary", "check",
    "runtime", "set_num_threads", "get_num_threads",
]
