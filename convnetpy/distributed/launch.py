"""What the MPI launcher told this process: its rank and the number of processes, read
from the environment that ``mpiexec`` (Open MPI, MPICH's Hydra, MVAPICH, Intel MPI, ``srun
--mpi=pmi2``) sets, without starting MPI.

``convnetpy train`` reads it to know that it runs under MPI before importing mpi4py, so a
launch of several processes without mpi4py installed is an error instead of N independent
runs writing the same files; ``data.DistributedSampler`` reads it for its defaults.

>>> launched({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4"})
(1, 4)
>>> launched({})
(0, 1)
"""

from __future__ import annotations

import os
from typing import Mapping

# (rank, size) variable pairs, most specific first
_VARIABLES = (
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),  # Open MPI
    ("PMI_RANK", "PMI_SIZE"),  # MPICH / Hydra, Intel MPI
    ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"),  # MVAPICH
)
# NOTE: Slurm's SLURM_PROCID / SLURM_NTASKS are not read: a batch script itself sees
# them too, as one process of an N-task allocation


def launched(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(rank, world size) as the launcher set them; (0, 1) for a plain start."""
    env = os.environ if env is None else env
    for rank, size in _VARIABLES:
        if rank in env and size in env:
            try:
                r, s = int(env[rank]), int(env[size])
            except ValueError:
                continue
            if s >= 1 and 0 <= r < s:
                return r, s
    return 0, 1
