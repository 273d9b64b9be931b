"""Whole-array reductions.

``sum_all`` is what ``Tensor.sum()`` with no dim computes: NumPy's (pairwise) sum.

>>> import numpy as np
>>> float(sum_all(np.arange(10, dtype=np.float32)))
45.0
"""

from __future__ import annotations

import numpy as np


def sum_all(a: np.ndarray) -> np.ndarray:
    """The sum of every element of ``a`` as a 0-d array of NumPy's result dtype."""
    return np.asarray(a.sum())
