"""Optimizer base class: parameter groups, per-parameter state, state_dict in PyTorch's
layout ({'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]})."""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

import numpy as np

from ..autograd import enable_grad
from ..tensor import Tensor


class Optimizer:
    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]) or \
                len({id(p) for p in group["params"]}) != len(group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.data = np.zeros_like(p.grad.data)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                if group.get("maximize", False):
                    g = -g
                self._update(p, g, group, self.state.setdefault(p, {}))
        return loss

    def _update(self, p: Tensor, g: np.ndarray, group: dict, state: dict) -> None:
        raise NotImplementedError

    # ----- state -----
    def state_dict(self) -> dict[str, Any]:
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in g["params"]]
            groups.append(packed)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state and self.state[p]:
                    state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                           for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def check_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Raise ValueError, changing nothing, when ``state_dict`` lacks state that this
        optimizer needs beyond the common layout (a wrapper's own, as Lookahead's slow
        weights); a checkpoint calls it before it restores anything."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict.get("param_groups")
        if not isinstance(groups, list) or "state" not in state_dict:
            raise ValueError("optimizer state_dict must have 'state' and 'param_groups'")
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        params = []
        for mine, saved in zip(self.param_groups, groups):
            if len(mine["params"]) != len(saved["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 "match the size of optimizer's group")
            params.extend(zip(saved["params"], mine["params"]))
        by_index = dict(params)
        new_state: dict[Tensor, dict[str, Any]] = {}
        for idx, st in state_dict["state"].items():
            idx = int(idx)
            if idx not in by_index:
                raise ValueError(f"optimizer state refers to parameter index {idx}, which the "
                                 "optimizer does not have")
            p = by_index[idx]
            entry = {}
            for k, v in st.items():
                if isinstance(v, (np.ndarray, Tensor)) and np.ndim(v) > 0:
                    v = np.array(v, dtype=p.dtype)
                    if v.shape != p.shape:
                        raise ValueError(f"optimizer state '{k}' for parameter {idx} has shape "
                                         f"{v.shape}, the parameter has shape {p.shape}")
                elif isinstance(v, (np.ndarray, Tensor)):
                    v = np.asarray(v).item()
                entry[k] = v
            new_state[p] = entry
        self.state = new_state
        for mine, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    mine[k] = copy.deepcopy(v)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {g[k]}" for k in sorted(g) if k != "params"]
        return "\n".join(lines) + "\n)"


def check_range(name: str, value: float, low: float = 0.0, high: float | None = None) -> None:
    if not low <= value or (high is not None and not value < high):
        raise ValueError(f"Invalid {name} value: {value}")
