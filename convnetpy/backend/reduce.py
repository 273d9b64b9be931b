"""``sum_all`` on the compiled loops: float32/float64 arrays added in float64, split over
the cores in fixed parts (so the result depends on the thread count, never on timing);
NumPy's own sum runs on one core. Other arrays go to the reference (kernels/reduce.py).
"""

from __future__ import annotations

import numpy as np

from ..kernels import reduce as reference
from .select import compiled as loops
from .threads import row_sum


def sum_all(a: np.ndarray) -> np.ndarray:
    """The sum of every element of ``a`` as a 0-d array of NumPy's result dtype."""
    if not (a.dtype in (np.float32, np.float64) and a.flags.c_contiguous and a.size):
        return reference.sum_all(a)
    flat, lp = a.reshape(-1), loops()
    return np.asarray(row_sum(lambda p: lp.flat_sum(flat[p]), flat), dtype=a.dtype)
