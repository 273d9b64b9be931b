"""BatchNorm1d and BatchNorm2d with PyTorch's buffers (running_mean, running_var,
num_batches_tracked), momentum rule and state_dict keys.

Training normalises with the batch statistics (biased variance) and updates the running
ones (unbiased variance), running = (1 - momentum) * running + momentum * batch; with
``momentum=None`` the running statistics are a cumulative average. Evaluation uses the
running statistics.

Every argument is checked at construction. NOTE: zero features are rejected (PyTorch builds an
empty layer), momentum must be None or lie in [0, 1] and eps be positive (PyTorch takes any
number, and checks eps > 0 in training only).

Shape:
    BatchNorm1d: (N, C) or (N, C, L); BatchNorm2d: (N, C, H, W) -> the same shape

>>> from convnetpy import nn
>>> list(nn.BatchNorm2d(16).state_dict())
['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..checks import check_dtype, check_int
from ..shape import ShapeError
from ..tensor import Tensor
from .module import Module, Parameter


class _BatchNorm(Module):
    _dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device: Any = None,
                 dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        op = type(self).__name__
        self.num_features = num_features = check_int(num_features, "num_features", op)
        self.momentum, self.eps = F.norm_args(op, momentum, eps)
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = np.dtype(np.float32 if dtype is None else check_dtype(dtype, "dtype", op))
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            if bias:
                self.bias = Parameter(np.zeros(num_features, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def param_formula(self) -> str | None:
        own = [p for p in (self.weight, self.bias) if p is not None]
        if not own:
            return None
        names = " + ".join(n for n, p in (("scale", self.weight), ("shift", self.bias))
                           if p is not None)
        return f"{len(own)} * {self.num_features} ({names}) = {len(own) * self.num_features:,}"

    def _momentum_factor(self) -> float:
        """The weight of this batch in the running statistics (counting it, in training):
        ``momentum``, or 1/batches for a cumulative average (``momentum=None``)."""
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.data)
        return factor

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._dims:
            want = " or ".join(f"{d}D" for d in self._dims)
            raise ShapeError("batch_norm", f"expected {want} input (got {x.ndim}D input of "
                                           f"shape {tuple(x.shape)})")
        if x.shape[1] != self.num_features:
            raise ShapeError(
                "batch_norm",
                f"expected {self.num_features} channels (num_features) on axis 1, got input "
                f"of shape {tuple(x.shape)} with {x.shape[1]} channels",
            )
        factor = self._momentum_factor()
        use_batch = self.training or self.running_mean is None
        keep = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if keep else None,
                            self.running_var if keep else None, self.weight, self.bias,
                            use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input, per channel C.

    Shape:
        (N, C) or (N, C, L) -> the same shape

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> out = nn.BatchNorm1d(3)(cp.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))
    >>> [round(v, 4) for v in out.tolist()[0]]   # (x - mean) / sqrt(var + eps)
    [-1.0, 0.0, 1.0]
    """

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) input, per channel C.

    Shape:
        (N, C, H, W) -> the same shape

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> bn = nn.BatchNorm2d(16)
    >>> bn(cp.ones(2, 16, 4, 4)).shape, int(bn.num_batches_tracked.item())
    ((2, 16, 4, 4), 1)
    """

    _dims = (4,)


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation whose training statistics cover the batches of every process of
    a data-parallel run (as PyTorch's): the per-channel sums go through
    ``process_group.all_reduce`` (default: ``SyncBatchNorm.default_group``, which
    ``convnetpy.distributed.init`` sets to the MPI job; none: this process alone, plain
    batch norm). Evaluation uses the running statistics, as BatchNorm does.
    ``SyncBatchNorm.convert_sync_batchnorm(model)`` replaces every BatchNorm1d/2d of a
    model by one, keeping its weights and statistics.

    Shape:
        (N, C, ...) -> the same shape (more than one value per channel over all processes)

    >>> from convnetpy import nn
    >>> net = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(4)))
    >>> type(net[0]).__name__, list(net.state_dict())[:2]
    ('SyncBatchNorm', ['0.weight', '0.bias'])
    """
    _dims = (2, 3, 4, 5)
    default_group: Any = None  # an object with all_reduce(array) -> summed array

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 process_group: Any = None, device: Any = None, dtype: Any = None, *,
                 bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype, bias=bias)
        self.process_group = process_group

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        if x.ndim not in self._dims or x.shape[1] != self.num_features:
            return super().forward(x)  # its shape error
        factor = self._momentum_factor()
        group = self.process_group or SyncBatchNorm.default_group
        reduce = None if group is None else (lambda a: group.all_reduce(a))
        return F.sync_batch_norm(x, self.running_mean, self.running_var, self.weight,
                                 self.bias, factor, self.eps, reduce)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: Any = None) -> Module:
        """``module`` with every BatchNorm1d/2d (the module itself, or any child) replaced
        by a SyncBatchNorm holding the same parameters and buffers."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            sync = cls(module.num_features, module.eps, module.momentum, module.affine,
                       module.track_running_stats, process_group)
            for name in ("weight", "bias"):
                sync._parameters[name] = module._parameters.get(name)
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                sync._buffers[name] = module._buffers.get(name)
            sync.training = module.training
            return sync
        for name, child in list(module._modules.items()):
            if child is not None:
                new = cls.convert_sync_batchnorm(child, process_group)
                if new is not child:
                    module._modules[name] = new
        return module
