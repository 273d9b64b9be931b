"""Lookahead (Zhang, Lucas, Hinton and Ba, 2019): an inner optimizer takes ``k`` fast
steps; then the slow weights move ``alpha`` of the way to the fast ones, and the fast
weights restart from there:  slow <- slow + alpha * (fast - slow);  fast <- slow.
It steadies training at little cost, and the fast-CIFAR recipes use it.

>>> import convnetpy as cp
>>> from convnetpy import nn, optim
>>> w = nn.Parameter(cp.tensor([0.0]).numpy())
>>> opt = optim.Lookahead(optim.SGD([w], lr=1.0), k=2, alpha=0.5)
>>> for _ in range(2):
...     w.grad = cp.tensor([-1.0])   # each fast step adds 1
...     opt.step()
>>> float(w.data[0])                 # fast 2.0, slow 0 + 0.5 * (2 - 0)
1.0
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .optimizer import Optimizer


class Lookahead(Optimizer):
    """Wraps ``optimizer``: its ``param_groups`` and ``state`` are the inner one's, so
    ``zero_grad`` and the learning-rate schedules work as before; ``state_dict`` holds the
    inner one's, the slow weights and the step count, for an exact resume."""

    def __init__(self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        # NOTE: Optimizer.__init__ is not called: the groups and state are the inner ones'
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"Lookahead wraps an Optimizer, got {type(optimizer).__name__}")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"Lookahead k must be a positive integer, got {k!r}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"Lookahead alpha must be in (0, 1], got {alpha}")
        self.optimizer, self.k, self.alpha = optimizer, k, float(alpha)
        self.defaults = optimizer.defaults
        self.steps = 0
        self.slow = [p.data.copy() for g in optimizer.param_groups for p in g["params"]]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def state(self) -> dict:
        return self.optimizer.state

    def _params(self) -> list:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    def add_param_group(self, group: dict[str, Any]) -> None:
        self.optimizer.add_param_group(group)
        self.slow += [p.data.copy() for p in self.optimizer.param_groups[-1]["params"]]

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self.optimizer.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            for p, slow in zip(self._params(), self.slow):
                slow += self.alpha * (p.data - slow)
                p.data[...] = slow
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "steps": self.steps,
                "k": self.k, "alpha": self.alpha, "slow": [s.copy() for s in self.slow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        slow = state["slow"]
        mine = self._params()
        if len(slow) != len(mine) or any(np.shape(s) != p.data.shape
                                         for s, p in zip(slow, mine)):
            raise ValueError("Lookahead state: the slow weights do not match the parameters")
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps, self.k, self.alpha = int(state["steps"]), int(state["k"]), state["alpha"]
        self.slow = [np.array(s, dtype=p.data.dtype) for s, p in zip(slow, mine)]

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, {self.optimizer!r})"
