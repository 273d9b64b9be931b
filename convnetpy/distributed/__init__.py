"""Training on several processes or machines over MPI (mpi4py): the only package that
imports mpi4py, and only once ``init()`` is called.

>>> from convnetpy import distributed as dist
>>> dist.rank(), dist.world_size()     # before init(): one process
(0, 1)

``init()`` starts MPI and returns the ``World`` (rank, size, collectives);
``DistributedDataParallel(model)`` averages gradients over the ranks in buckets, overlapped
with backward; ``data.DistributedSampler`` gives each rank its share of the data;
``nn.SyncBatchNorm`` (``convert_sync_batchnorm``) computes batch statistics over every
rank. ``convnetpy train`` does all of it when launched with ``mpiexec -n N``.
"""

from ..nn.normalization import SyncBatchNorm
from . import comm
from .comm import (
    EXTRA,
    DistributedError,
    World,
    all_reduce,
    barrier,
    broadcast,
    is_initialized,
    rank,
    world,
    world_size,
)
from .ddp import DistributedDataParallel
from .launch import launched


def init() -> World:
    """Start MPI (once; needs mpi4py: ``pip install "convnetpy[mpi]"``) and return the
    World; ``nn.SyncBatchNorm`` then sums its statistics over it."""
    w = comm.init()
    SyncBatchNorm.default_group = w
    return w


__all__ = ["init", "is_initialized", "rank", "world_size", "world", "barrier", "all_reduce",
           "broadcast", "World", "DistributedError", "DistributedDataParallel", "launched",
           "EXTRA"]
