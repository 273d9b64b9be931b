"""Data-parallel training: every rank holds the whole model, runs its own share of the
batch, and the gradients are averaged over the ranks before the optimizer steps, so every
rank keeps the same weights (as PyTorch's DistributedDataParallel).

The trainable parameters are grouped, in the reverse of their registration order (roughly
the order backward produces their gradients), into buckets of about ``bucket_cap_mb`` MB
each of one dtype. A bucket's gradients are copied into one flat buffer and summed over
the ranks with one allreduce. With ``overlap`` the exchange of a bucket starts as soon as
backward has produced all of its gradients, while backward goes on with earlier layers;
buckets always start in the same order on every rank (a ready bucket waits for the ones
before it), as MPI requires of collectives. When backward completes (an engine callback),
the remaining buckets are sent, every exchange is waited for, and each gradient becomes
the mean over the ranks. A parameter that got no gradient on a rank counts as zero there
(and keeps no gradient if no rank gave it one).

At construction the parameters and buffers are broadcast from rank 0; with
``broadcast_buffers`` (the default, as PyTorch) the buffers (batch norm's running
statistics) are broadcast from rank 0 again before each forward pass in training mode.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np

from ..autograd import queue_callback
from ..nn.module import Module
from ..tensor import Tensor
from .comm import World, world

FIRST_BUCKET_BYTES = 1 << 20


class _Bucket:
    def __init__(self, params: list) -> None:
        self.params = params
        self.sizes = [p.data.size for p in params]
        self.flat = np.zeros(sum(self.sizes), dtype=params[0].data.dtype)
        self.ready = 0
        self.request = None
        self.started = False


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over ``world`` (default: the MPI job's,
    see ``convnetpy.distributed.init``); call it as the module. ``bucket_cap_mb`` sizes the
    allreduce buckets; ``overlap`` starts them during backward. ``allreduce_seconds``
    accumulates the time spent waiting for exchanges after backward (for benchmarks)."""

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0, overlap: bool = True,
                 broadcast_buffers: bool = True, world_: World | None = None) -> None:
        super().__init__()
        self.module = module
        w = world_ or world()
        object.__setattr__(self, "world", w)
        self.overlap, self.broadcast_buffers = bool(overlap), bool(broadcast_buffers)
        self.allreduce_seconds = 0.0
        self._sync = True
        for t in list(module.parameters()) + [b for b in module.buffers()]:
            w.broadcast(t.data)
        params = [p for p in module.parameters() if p.requires_grad]
        cap = max(1, int(bucket_cap_mb * 1e6))
        buckets, current, size = [], [], 0
        for p in reversed(params):
            # the first bucket (the last layers' gradients, ready first) small, as PyTorch:
            # its exchange starts early in backward
            limit = min(cap, FIRST_BUCKET_BYTES) if not buckets else cap
            if current and (size + p.data.nbytes > limit or p.data.dtype != current[0].dtype):
                buckets.append(current)
                current, size = [], 0
            current.append(p)
            size += p.data.nbytes
        if current:
            buckets.append(current)
        object.__setattr__(self, "buckets", [_Bucket(b) for b in buckets])
        self._where = {}
        self._handles = []
        self._pass_open = False
        if w.size > 1:
            for i, b in enumerate(self.buckets):
                for p in b.params:
                    self._where[id(p)] = i
                    self._handles.append(p.register_post_accumulate_grad_hook(self._ready))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.world.size > 1 and self.broadcast_buffers and self.training:
            self._broadcast_buffers()
        return self.module(*args, **kwargs)

    def _broadcast_buffers(self) -> None:
        """Rank 0's buffers to every rank: one broadcast per dtype, not one per buffer."""
        by_dtype: dict = {}
        for b in self.module.buffers():
            by_dtype.setdefault(b.data.dtype, []).append(b.data)
        for dtype, arrays in by_dtype.items():
            flat = np.concatenate([a.reshape(-1) for a in arrays]).astype(dtype, copy=False)
            self.world.broadcast(flat)
            off = 0
            for a in arrays:
                a[...] = flat[off:off + a.size].reshape(a.shape)
                off += a.size

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside leave the gradients local (accumulate them over several
        batches; the first backward outside averages the sum)."""
        was, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = was

    # ----- the exchange -----
    def _ready(self, p) -> None:
        if not self._sync:
            return
        if not self._pass_open:
            self._pass_open = True
            queue_callback(self._finish)
        b = self.buckets[self._where[id(p)]]
        b.ready += 1
        if self.overlap:
            self._start_ready()
            for other in self.buckets:  # let MPI progress the exchanges under way
                if other.request is not None:
                    other.request.Test()

    def _start(self, b: _Bucket) -> None:
        off = 0
        for p, n in zip(b.params, b.sizes):
            if p.grad is None:
                b.flat[off:off + n] = 0
            else:
                b.flat[off:off + n] = p.grad.data.reshape(-1)
            off += n
        b.request = self.world.start_all_reduce(b.flat)
        b.started = True

    def _start_ready(self) -> None:
        for b in self.buckets:  # in order: a bucket starts after the ones before it
            if b.started:
                continue
            if b.ready < len(b.params):
                return
            self._start(b)

    def _finish(self) -> None:
        t0 = time.perf_counter()
        for b in self.buckets:
            if not b.started:
                self._start(b)
        for b in self.buckets:
            b.request.Wait()
        for b in self.buckets:
            b.flat /= self.world.size  # the sums become means, in place
            off = 0
            for p, n in zip(b.params, b.sizes):
                mean = b.flat[off:off + n].reshape(p.data.shape)
                if p.grad is None:  # none here; left None if no rank had one
                    if np.any(mean):
                        p.grad = Tensor(mean.copy())  # the bucket is reused next step
                else:
                    p.grad.data[...] = mean
                off += n
            b.ready, b.request, b.started = 0, None, False
        self._pass_open = False
        self.allreduce_seconds += time.perf_counter() - t0

