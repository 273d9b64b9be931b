"""What ``fit`` does differently when it runs as one rank of several (``mpiexec -n N``).

- ``world_for(cfg)``: the World the run trains on (``cfg.distributed``: ``auto`` starts
  MPI when the launcher started more than one process, ``mpi`` always, ``none`` never).
- Each rank trains on its share of every epoch (``data.DistributedSampler``; the batch size
  is per rank, the global batch is N times it) and validates its share of the validation
  split; the sums behind every number shown (loss, accuracy, confusion, images) are added
  over the ranks first, so the log reads as one run.
- The model is wrapped in ``DistributedDataParallel`` (weights broadcast from rank 0,
  gradients averaged); ``sync_batchnorm`` makes batch norm's statistics global.
- Only rank 0 writes (run folder, checkpoints, logs, dashboard); ``RankSync`` makes every
  rank stop at the same step when any rank's callbacks ask to, and carries rank 0's
  learning rate (which the dashboard may set by hand) to the others.
- ``fail_everywhere``: a rank that fails ends every rank (MPI_Abort), with its error on
  stderr, so that the others never wait for it.
"""

from __future__ import annotations

import sys

import numpy as np

from .. import distributed as dist
from ..data import ArrayDataset
from ..nn import SyncBatchNorm
from .callbacks import Callback
from .state import RunState

MODES = ("auto", "none", "mpi")


def world_for(cfg) -> dist.World:
    """The World of this run (a world of one unless MPI is asked for or launched)."""
    if cfg.distributed == "none":
        return dist.World()
    if cfg.distributed == "mpi" or dist.launched()[1] > 1:
        return dist.init()
    return dist.world()


def shard(ds: ArrayDataset, world: dist.World) -> ArrayDataset:
    """Every ``world.size``-th image from ``world.rank`` on (for evaluation: uneven shards,
    nothing repeated)."""
    if world.size == 1:
        return ds
    return ds.subset(np.arange(world.rank, len(ds), world.size), ds.name)


def wrap(model, cfg, world: dist.World):
    """The model as the training step calls it: ``DistributedDataParallel`` over
    ``world`` (with batch norm synchronised if ``cfg.sync_batchnorm``), or the model."""
    if world.size == 1:
        return model
    if cfg.sync_batchnorm:
        SyncBatchNorm.convert_sync_batchnorm(model, world)
    return dist.DistributedDataParallel(model, world_=world)


def reduce_sums(world: dist.World, *values: float) -> list[float]:
    """``values`` added over every rank (one float64 allreduce)."""
    if world.size == 1:
        return list(values)
    return world.all_reduce(np.array(values, dtype=np.float64)).tolist()


class RankSync(Callback):
    """After every step (the last callback to run): stops every rank when any rank asked
    to stop, and gives every rank rank 0's learning rates."""

    def __init__(self, world: dist.World) -> None:
        self.world = world

    def on_step_end(self, state: RunState) -> None:
        groups = state.optimizer.param_groups
        local = np.zeros(1 + len(groups))
        local[0] = state.stop_reason is not None
        if self.world.rank == 0:
            local[1:] = [g["lr"] for g in groups]
        total = self.world.all_reduce(local)
        if self.world.rank != 0:
            for g, lr in zip(groups, total[1:]):
                g["lr"] = float(lr)
        if total[0] > 0 and state.stop_reason is None:
            state.request_stop("stopped by another rank")


def fail_everywhere(world: dist.World, error: BaseException) -> None:
    """Report ``error`` on stderr as this rank's and end every rank of the job."""
    sys.stderr.write(f"convnetpy: rank {world.rank} of {world.size} failed: "
                     f"{type(error).__name__}: {error}; stopping every rank\n")
    world.abort(1)
