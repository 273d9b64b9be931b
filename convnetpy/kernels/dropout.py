"""Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p).

The random generator is an explicit argument, so a run is reproducible from its seed.

Shape:
    any shape -> the same shape

>>> import numpy as np
>>> out, mask = dropout_forward(np.ones(8), 0.5, np.random.default_rng(0))
>>> sorted(set(out.tolist())) == [0.0, 2.0]
True
"""

from __future__ import annotations

import numpy as np


def dropout_forward(
    x: np.ndarray, p: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if p == 1.0:
        mask = np.zeros(x.shape, dtype=x.dtype)
    else:
        keep = rng.random(x.shape, dtype=np.float64 if x.dtype == np.float64 else np.float32)
        mask = (keep >= p).astype(x.dtype) * np.asarray(1.0 / (1.0 - p), dtype=x.dtype)
    return x * mask, mask


def dropout_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return dout * mask
