"""``check(model, input_size)``: walk the shapes once (no convolution computed) and raise at
the first impossible layer, naming its path and configuration, the size formula with the
numbers filled in, and concrete fixes; return the warnings for layers whose windows do not
cover the input exactly (legal, as in PyTorch, but border pixels are dropped).

>>> import convnetpy as cp
>>> from convnetpy import nn
>>> cp.check(nn.Sequential(nn.Conv2d(3, 16, 5, stride=2)), (1, 3, 32, 32))
['0 Conv2d(3, 16, kernel_size=(5, 5), stride=(2, 2)): output height (32 + 2*0 - 5)/2 + 1 = \
14.5 is not an integer; the last 1 row of the input is dropped. Use kernel_size=4 or 6, \
stride=1 or padding=(0, 1) to cover it exactly.', '0 Conv2d(3, 16, kernel_size=(5, 5), \
stride=(2, 2)): output width (32 + 2*0 - 5)/2 + 1 = 14.5 is not an integer; the last 1 column \
of the input is dropped. Use kernel_size=4 or 6, stride=1 or padding=(0, 1) to cover it \
exactly.']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.module import Module
from .trace import trace


def check(model: Module, input_size: tuple[int, ...], dtype: Any = np.float32) -> list[str]:
    """Raise a ShapeError (a ValueError) at the first layer the input cannot pass; return
    the list of non-integer output-size warnings (empty when every size divides)."""
    if len(input_size) < 2 or any(int(v) < 1 for v in input_size):
        raise ValueError(f"input_size must be (N, C, H, W) with positive sizes, got "
                         f"{input_size}")
    tracer = trace(model, tuple(int(v) for v in input_size), dtype)
    return [f"{row.path or '(model)'} {row.module._one_line()}: {note}"
            for row in tracer.rows.values() for note in row.notes if "not an integer" in note]
