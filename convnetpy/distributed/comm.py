"""The processes of a run and what they say to each other, over MPI (mpi4py).

``init()`` starts MPI (importing mpi4py, which is only done here) and returns the
``World``; without ``init`` (or with one process) every call works on its own: rank 0 of
1, reductions return their input. Arrays travel as NumPy buffers, with no pickling, except
``broadcast_object`` for small settings (a run folder's name).

The collectives are the usual ones, called in the same order by every rank: ``barrier``,
``all_reduce`` (sum, mean, max, min; in place or into a new array; ``start_all_reduce``
returns a request to wait on, for overlap), ``broadcast``. ``abort`` ends every rank of the
job at once: what a rank does when it fails, so that the others do not wait for it forever.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from .launch import launched

EXTRA = 'pip install "convnetpy[mpi]"'


class DistributedError(RuntimeError):
    """MPI is needed and missing, or a collective was misused."""


class World:
    """The processes of the job: ``rank``, ``size`` and the collectives. One process
    (``comm`` None) is a world of one whose collectives are the identity."""

    def __init__(self, comm: Any = None) -> None:
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size})"

    def _op(self, op: str):
        from mpi4py import MPI

        ops = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}
        if op not in ops:
            raise ValueError(f"all_reduce op must be one of {sorted(ops)}, got {op!r}")
        return ops[op]

    def barrier(self) -> None:
        if self.size > 1:
            self.comm.Barrier()

    def all_reduce(self, array: np.ndarray, op: str = "sum",
                   inplace: bool = False) -> np.ndarray:
        """The elementwise ``op`` of ``array`` over every rank (a new array, or ``array``
        itself with ``inplace``)."""
        arr = np.asarray(array)
        out = arr if inplace else np.array(arr, copy=True)
        if self.size > 1:
            from mpi4py import MPI

            if not out.flags.c_contiguous:
                raise DistributedError("all_reduce needs a C-contiguous array")
            self.comm.Allreduce(MPI.IN_PLACE, out, op=self._op(op))
        if op == "mean":
            if np.issubdtype(out.dtype, np.integer):
                raise DistributedError("all_reduce(op='mean') needs a floating-point array")
            out /= self.size
        return out

    def start_all_reduce(self, array: np.ndarray) -> Any:
        """Start summing ``array`` (C-contiguous) in place over every rank; returns a
        request with ``Wait()`` and ``Test()`` (None in a world of one)."""
        if self.size == 1:
            return None
        from mpi4py import MPI

        return self.comm.Iallreduce(MPI.IN_PLACE, array, op=MPI.SUM)

    def broadcast(self, array: np.ndarray, root: int = 0) -> np.ndarray:
        """Overwrite ``array`` (in place) with ``root``'s."""
        if self.size > 1:
            self.comm.Bcast(array, root=root)
        return array

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """``root``'s ``obj`` on every rank (small things: names, settings)."""
        return self.comm.bcast(obj, root=root) if self.size > 1 else obj

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (after flushing this one's output)."""
        sys.stdout.flush()
        sys.stderr.flush()
        if self.size > 1:
            self.comm.Abort(code)
        os._exit(code)


_world = World()


def init() -> World:
    """Start MPI (once) and return the World. Raises DistributedError naming the extra to
    install when mpi4py is missing."""
    global _world
    if _world.comm is None:
        try:
            from mpi4py import MPI
        except ImportError as e:
            rank, size = launched()
            where = f" (this is rank {rank} of {size} processes)" if size > 1 else ""
            raise DistributedError(
                f"training on several processes needs mpi4py{where}: {EXTRA} (or mpi4py "
                f"built against your cluster's MPI), or run one process with "
                f"--distributed none") from e
        _world = World(MPI.COMM_WORLD)
    return _world


def world() -> World:
    """The World: after ``init``, the MPI job's; before, a world of one."""
    return _world


def is_initialized() -> bool:
    return _world.comm is not None


def rank() -> int:
    return _world.rank


def world_size() -> int:
    return _world.size


def barrier() -> None:
    _world.barrier()


def all_reduce(array: np.ndarray, op: str = "sum") -> np.ndarray:
    return _world.all_reduce(array, op)


def broadcast(array: np.ndarray, root: int = 0) -> np.ndarray:
    return _world.broadcast(array, root)
