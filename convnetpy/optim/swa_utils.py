"""Averages of a model's weights over training, with torch.optim.swa_utils' names:
``AveragedModel`` keeps a copy of a model whose parameters are the running mean of the
model's (stochastic weight averaging, the default) or an exponential moving average of
them (``multi_avg_fn=get_ema_multi_avg_fn(decay)``), updated by ``update_parameters``
after optimizer steps; evaluating the average instead of the last weights is one of the
fast-CIFAR recipes' tricks.

>>> import convnetpy as cp
>>> from convnetpy import nn
>>> net = nn.Linear(1, 1, bias=False)
>>> ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.5))
>>> for w in (2.0, 4.0):
...     net.weight.data[...] = w
...     ema.update_parameters(net)
>>> float(ema.module.weight.data[0, 0])   # first copy 2.0, then 0.5 * 2 + 0.5 * 4
3.0
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np

from ..nn.module import Module
from ..tensor import Tensor


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable:
    """An exponential moving average: average = decay * average + (1 - decay) * current,
    for every parameter at once."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")

    def ema_update(averaged: list, current: list, num_averaged) -> None:
        for a, c in zip(averaged, current):
            a += (1.0 - decay) * (c - a)

    return ema_update


class AveragedModel(Module):
    """A copy of ``model`` whose parameters average the model's over the calls of
    ``update_parameters``: the first call copies them; later ones take the running mean
    (default), ``avg_fn(averaged, current, num_averaged) -> new`` per parameter, or
    ``multi_avg_fn(averaged_list, current_list, num_averaged)`` in place on all of them.
    With ``use_buffers`` the buffers (batch norm's running statistics) are averaged too;
    otherwise they are copied from the model at each update. Calling it runs the copy.

    NOTE: ``device`` is accepted for PyTorch's signature and ignored (CPU only)."""

    def __init__(self, model: Module, device: Any = None, avg_fn: Callable | None = None,
                 multi_avg_fn: Callable | None = None, use_buffers: bool = False) -> None:
        super().__init__()
        self.module = copy.deepcopy(model)
        self.register_buffer("n_averaged", Tensor(np.array(0, dtype=np.int64)))
        self.avg_fn, self.multi_avg_fn, self.use_buffers = avg_fn, multi_avg_fn, use_buffers

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def _tensors(self, model: Module) -> list[Tensor]:
        params = list(model.parameters())
        return params + list(model.buffers()) if self.use_buffers else params

    def update_parameters(self, model: Module) -> None:
        mine, theirs = self._tensors(self.module), self._tensors(model)
        if len(mine) != len(theirs) or any(a.shape != b.shape for a, b in zip(mine, theirs)):
            raise ValueError("update_parameters needs the model this average was made from "
                             "(its parameters differ in number or shape)")
        n = int(self.n_averaged.data)
        floats = [(a, b) for a, b in zip(mine, theirs) if a.data.dtype.kind == "f"]
        if n == 0:
            for a, b in zip(mine, theirs):
                a.data[...] = b.data
        elif self.multi_avg_fn is not None:
            self.multi_avg_fn([a.data for a, _ in floats], [b.data for _, b in floats], n)
        else:
            for a, b in floats:
                if self.avg_fn is None:  # the running mean
                    a.data += (b.data - a.data) / (n + 1)
                else:
                    a.data[...] = self.avg_fn(a.data, b.data, n)
        for a, b in zip(mine, theirs):  # counts (num_batches_tracked) are not averaged
            if a.data.dtype.kind != "f":
                a.data[...] = b.data
        if not self.use_buffers:
            for a, b in zip(self.module.buffers(), model.buffers()):
                a.data[...] = b.data
        self.n_averaged.data[...] = n + 1
