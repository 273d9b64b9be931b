"""SGD with momentum, dampening, Nesterov and weight decay (torch.optim.SGD's update).

    g = grad (+ weight_decay * p);  buf = g (first step) or momentum*buf + (1-dampening)*g
    g = g + momentum*buf (nesterov) or buf;  p -= lr * g
"""

from __future__ import annotations

from typing import Any, Iterable

from .optimizer import Optimizer, check_range


class SGD(Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False) -> None:
        check_range("learning rate", lr)
        check_range("momentum", momentum)
        check_range("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _update(self, p, g, group, state) -> None:
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data
        mom = group["momentum"]
        if mom:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= mom
                buf += (1 - group["dampening"]) * g
            g = g + mom * buf if group["nesterov"] else buf
        p.data -= group["lr"] * g
