"""Whole-array reductions.

``sum_all`` is what ``Tensor.sum()`` with no dim computes. With the compiled loops it adds
float32/float64 arrays in float64, split over the cores in fixed parts (so the result
depends on the thread count, never on timing) - NumPy's own sum runs on one core.

>>> import numpy as np
>>> float(sum_all(np.arange(10, dtype=np.float32)))
45.0
"""

from __future__ import annotations

import numpy as np

from ._compiled import loops
from ._parallel import row_sum


def sum_all(a: np.ndarray) -> np.ndarray:
    """The sum of every element of ``a`` as a 0-d array of NumPy's result dtype."""
    lp = loops()
    if not (lp and a.dtype in (np.float32, np.float64) and a.flags.c_contiguous and a.size):
        return np.asarray(a.sum())
    flat = a.reshape(-1)
    return np.asarray(row_sum(lambda p: lp.flat_sum(flat[p]), flat), dtype=a.dtype)
