"""Module and Parameter: the PyTorch container model (registration by attribute assignment,
recursive parameters/buffers, state_dict with the same keys, train/eval, a torch-like repr).

A ShapeError raised inside a layer is annotated on its way out: the innermost module names
itself, the outermost call adds the layer's path (``features.0``), so the user reads
``Conv2d(3, 16, kernel_size=(5, 5), ...) at features.0: expected input ...``.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from ..anomaly import layer_stack, quiet_floating_point
from ..shape import ShapeError
from ..tensor import Tensor, as_array


class Parameter(Tensor):
    """A Tensor that a Module registers as a learnable parameter (requires_grad by default)."""

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        arr = np.zeros(0, dtype=np.float32) if data is None else as_array(data)
        super().__init__(arr, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class StateDictError(RuntimeError, ValueError):
    """A state_dict that does not fit the model (missing/unexpected keys, wrong shapes)."""


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class RemovableHandle:
    def __init__(self, hooks: dict, key: int) -> None:
        self.hooks, self.key = hooks, key

    def remove(self) -> None:
        self.hooks.pop(self.key, None)


# per thread, how deep in module calls it is: the outermost call names the path of a layer
# that raised a ShapeError (a model may run in one thread while another probes its copy)
_calls = threading.local()
_hook_ids = itertools.count(1)  # next() on a count is atomic: ids stay unique across threads


def _addindent(s: str, n: int) -> str:
    lines = s.split("\n")
    return lines[0] + "".join("\n" + " " * n + line for line in lines[1:])


class Module:
    """Base class of every layer and model."""

    training: bool

    def __init__(self) -> None:
        for name, value in (("_parameters", OrderedDict()), ("_buffers", OrderedDict()),
                            ("_non_persistent", set()), ("_modules", OrderedDict()),
                            ("_forward_hooks", OrderedDict()),
                            ("_forward_pre_hooks", OrderedDict()), ("training", True)):
            object.__setattr__(self, name, value)

    # ----- registration -----
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign before Module.__init__() call")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._drop(name)
            params[name] = value
        elif isinstance(value, Module):
            self._drop(name)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter "
                                f"'{name}' (Parameter or None expected)")
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module "
                                f"'{name}' (Module or None expected)")
            modules[name] = None
        elif name in buffers:
            buffers[name] = None if value is None else (
                value if isinstance(value, Tensor) else Tensor(value))
        else:
            object.__setattr__(self, name, value)

    def _drop(self, name: str) -> None:
        self.__dict__.pop(name, None)
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._drop(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter "
                            f"'{name}' (convnetpy.nn.Parameter or None required)")
        self._drop(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        self._drop(name)
        self._buffers[name] = None if tensor is None else (
            tensor if isinstance(tensor, Tensor) else Tensor(tensor))
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if not isinstance(name, str) or "." in name or not name:
            raise KeyError(f'module name must be a non-empty string without ".", got {name!r}')
        self._drop(name)
        self._modules[name] = module

    register_module = add_module

    def _create_weight_bias(self, weight_shape: tuple[int, ...], bias: bool, dtype: Any) -> None:
        """Register ``weight`` (uninitialised) and ``bias`` (or None) as Linear/Conv do."""
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        self.weight = Parameter(np.empty(weight_shape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(weight_shape[0], dtype=dtype))
        else:
            self.register_parameter("bias", None)

    # ----- traversal -----
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                sub = f"{prefix}.{name}" if prefix else name
                yield from m.named_modules(memo, sub, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, store: str, prefix: str, recurse: bool, remove_duplicate: bool):
        seen: set[int] = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, v in getattr(m, store).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield (f"{mprefix}.{name}" if mprefix else name), v

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ----- modes and conversion -----
    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data = np.zeros_like(p.grad.data)

    def apply(self, fn: Callable[[Module], None]) -> Module:
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def to(self, dtype: Any) -> Module:
        """Convert floating-point parameters and buffers to ``dtype`` (in place)."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Module.to() only accepts floating point dtypes, got {dtype}")
        for t in list(self.parameters()) + list(self.buffers()):
            if t.data.dtype.kind == "f":
                t.data = t.data.astype(dtype)
                if t.grad is not None:
                    t.grad.data = t.grad.data.astype(dtype)
        return self

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    # ----- state -----
    def state_dict(self, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers under PyTorch's keys; the values share memory
        with the model (call ``.numpy().copy()`` to keep a snapshot)."""
        out = OrderedDict() if destination is None else destination
        # like torch, a module reachable under two names is saved under both
        for mprefix, m in self.named_modules(prefix=prefix.rstrip("."), remove_duplicate=False):
            base = f"{mprefix}." if mprefix else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[base + name] = p if keep_vars else p.detach()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[base + name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values into the model's parameters and buffers (in place, cast to their
        dtype). Shape mismatches always raise; missing/unexpected keys raise when strict."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors, ready = [], []
        for key, target in own.items():
            if key not in state_dict:
                continue
            try:
                value = as_array(state_dict[key])
            except (TypeError, ValueError) as e:
                errors.append(f'While copying the parameter named "{key}": {e}')
                continue
            if value.shape != target.data.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(value.shape)} "
                    f"from checkpoint, the shape in current model is {tuple(target.data.shape)}."
                )
                continue
            if value.dtype.kind not in "biuf":
                errors.append(f'While copying the parameter named "{key}": unsupported dtype '
                              f"{value.dtype}")
                continue
            ready.append((target, value))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ". ")
        if errors:
            raise StateDictError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                + "\n\t".join(errors)
            )
        for target, value in ready:  # all checked first: a failed load changes nothing
            np.copyto(target.data, value, casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    # ----- calling -----
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required "
                                  '"forward" function')

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, inputs, output)`` runs after forward; may return a new output."""
        key = next(_hook_ids)
        self._forward_hooks[key] = hook
        return RemovableHandle(self._forward_hooks, key)

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, inputs)`` runs before forward; may return new inputs."""
        key = next(_hook_ids)
        self._forward_pre_hooks[key] = hook
        return RemovableHandle(self._forward_pre_hooks, key)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        depth = getattr(_calls, "depth", 0)
        _calls.depth = depth + 1
        layers = layer_stack()  # anomaly mode: the ops run in this layer learn its name
        if layers is not None:
            layers.append(self)
        try:
            if depth == 0:  # NumPy's warnings off once for the whole model call
                with quiet_floating_point():
                    return self._call(args, kwargs)
            return self._call(args, kwargs)
        except ShapeError as e:
            if e.module is None:
                e.module, e.module_desc = self, self._one_line()
            if depth == 0 and e.path is None and e.module is not self:
                e.path = next((n for n, m in self.named_modules() if m is e.module), None)
            raise
        finally:
            _calls.depth = depth
            if layers is not None:
                layers.pop()

    def _call(self, args: tuple, kwargs: dict) -> Any:
        for hook in list(self._forward_pre_hooks.values()):
            res = hook(self, args)
            if res is not None:
                args = res if isinstance(res, tuple) else (res,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            res = hook(self, args, out)
            if res is not None:
                out = res
        return out

    # ----- repr -----
    def extra_repr(self) -> str:
        return ""

    def param_formula(self) -> str | None:
        """How this module's own parameters add up, numbers filled in (the dashboard shows
        it); None without parameters of its own. Layers with a lecture formula override
        this; by default, the elements of each parameter added."""
        own = [p for p in self._parameters.values() if p is not None]
        if not own:
            return None
        terms = ["*".join(str(d) for d in p.shape) or "1" for p in own]
        return f"{' + '.join(terms)} = {sum(p.numel() for p in own):,}"

    def _one_line(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({k}): {_addindent(repr(m), 2)}" for k, m in self._modules.items()]
        lines = extra_lines + child_lines
        s = type(self).__name__ + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                s += extra_lines[0]
            else:
                s += "\n  " + "\n  ".join(lines) + "\n"
        return s + ")"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))
