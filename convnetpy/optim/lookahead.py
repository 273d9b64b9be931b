"""Lookahead (Zhang, Lucas, Hinton and Ba, 2019): an inner optimizer takes ``k`` fast
steps; then the slow weights move ``alpha`` of the way to the fast ones, and the fast
weights restart from there:  slow <- slow + alpha * (fast - slow);  fast <- slow.
It steadies training at little cost, and the fast-CIFAR recipes use it.

``alpha`` may also be a function of the number of inner steps taken: airbench's
schedule, ``cubic_alpha(total, end)``, starts at 1 (no averaging) and falls as the cube of
the run's progress to ``end``, so the slow weights average more as the learning rate
falls; ``use_slow()`` then hands the slow weights to the model at the end of training.

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
    ``zero_grad`` and the learning-rate schedules work as before; ``state_dict`` is the
    inner one's in the usual layout, each parameter's entry holding its slow weights
    (``lookahead_slow``) and the step count (``lookahead_steps``) too, for an exact resume
    (a checkpoint stores it as any optimizer's). ``alpha``: a number in (0, 1], or a
    function of the inner step count returning one in [0, 1]."""

    def __init__(self, optimizer: Optimizer, k: int = 5,
                 alpha: float | Callable[[int], float] = 0.5) -> None:
        # NOTE: Optimizer.__init__ is not called: the groups and state are the inner ones'
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"Lookahead wraps an Optimizer, got {type(optimizer).__name__}")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"Lookahead k must be a positive integer, got {k!r}")
        if not callable(alpha) and not (isinstance(alpha, (int, float))
                                        and not isinstance(alpha, bool) and 0.0 < alpha <= 1.0):
            raise ValueError(f"Lookahead alpha must be in (0, 1] or a function of the step, "
                             f"got {alpha!r}")
        self.optimizer, self.k = optimizer, k
        self.alpha = alpha if callable(alpha) else float(alpha)
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
            alpha = self.alpha(self.steps) if callable(self.alpha) else self.alpha
            if not 0.0 <= alpha <= 1.0:
                raise ValueError(f"Lookahead alpha at step {self.steps} is {alpha}, outside "
                                 "[0, 1]")
            for p, slow in zip(self._params(), self.slow):
                slow += alpha * (p.data - slow)
                p.data[...] = slow
        return loss

    def use_slow(self) -> None:
        """Set the parameters to the slow weights (the end of training: the fast steps
        since the last sync are dropped, as airbench does)."""
        for p, slow in zip(self._params(), self.slow):
            p.data[...] = slow

    def state_dict(self) -> dict[str, Any]:
        sd = self.optimizer.state_dict()
        for idx, slow in enumerate(self.slow):
            entry = sd["state"].setdefault(idx, {})
            entry["lookahead_slow"], entry["lookahead_steps"] = slow.copy(), self.steps
        return sd

    def check_state_dict(self, state: dict[str, Any]) -> None:
        """Raise ValueError, changing nothing, when ``state`` lacks this wrapper's own part:
        slow weights of each parameter's shape and a step count."""
        mine = self._params()
        entries = _entries(state)
        slow = [entries.get(i, {}).get("lookahead_slow") for i in range(len(mine))]
        if any(s is None or np.shape(s) != p.data.shape for s, p in zip(slow, mine)):
            raise ValueError("Lookahead state: the slow weights do not match the parameters "
                             "(was it saved by a Lookahead over the same parameters?)")
        steps = entries[0].get("lookahead_steps") if mine else 0
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"Lookahead state: the step count must be an integer >= 0, got "
                             f"{steps!r}")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.check_state_dict(state)
        mine = self._params()
        entries = _entries(state)
        slow = [entries[i]["lookahead_slow"] for i in range(len(mine))]
        inner = {i: {k: v for k, v in e.items() if not k.startswith("lookahead_")}
                 for i, e in entries.items()}
        self.optimizer.load_state_dict({**state, "state": {i: e for i, e in inner.items()
                                                           if e}})
        self.steps = int(entries[0]["lookahead_steps"]) if mine else 0
        self.slow = [np.array(s, dtype=p.data.dtype) for s, p in zip(slow, mine)]

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, {self.optimizer!r})"


def _entries(state: dict[str, Any]) -> dict[int, dict[str, Any]]:
    # parameter indices may arrive as strings (a state that went through JSON), as the
    # inner optimizers' load_state_dict accepts them
    return {int(i): e for i, e in state.get("state", {}).items()}


def cubic_alpha(total_steps: int, end: float) -> Callable[[int], float]:
    """airbench's Lookahead schedule: alpha at inner step s is
    1 - (1 - end) * (s / total_steps) ** 3 (1 at the start: no averaging; ``end`` at the
    last step). airbench94 uses ``end = 1 - 0.95 ** 5`` with k = 5.

    >>> a = cubic_alpha(100, 0.25)
    >>> a(0), a(50), a(100)
    (1.0, 0.90625, 0.25)
    """
    if not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"cubic_alpha: total_steps must be a positive integer, got "
                         f"{total_steps!r}")
    if not 0.0 <= end <= 1.0:
        raise ValueError(f"cubic_alpha: end must be in [0, 1], got {end}")
    return lambda step: 1.0 - (1.0 - end) * min(step / total_steps, 1.0) ** 3
