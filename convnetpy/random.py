"""The library's random number generator (used by initialisation and dropout).

``convnetpy.manual_seed(n)`` makes a run reproducible, as ``torch.manual_seed`` does. The
generator is NumPy's PCG64, so the numbers differ from PyTorch's for the same seed.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator and return it.

    >>> import convnetpy as cp
    >>> a = cp.manual_seed(0).random(); b = cp.manual_seed(0).random()
    >>> a == b
    True
    """
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    return _generator


def get_rng_state() -> dict:
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    _generator.bit_generator.state = state
