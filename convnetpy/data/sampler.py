"""Which images each process of a data-parallel run takes (as PyTorch's
DistributedSampler).

Epoch e's order is ``default_rng([seed, e])``'s permutation of the dataset (the order a
``DataLoader`` with ``shuffle`` uses in one process), made a multiple of the number of
processes by repeating its first indices (or, with ``drop_last``, cutting its tail);
process r takes every num_replicas-th index from r on. So the shards are disjoint (bar
the repeated few), equally long, and batch b of every process together is batch b of one
process whose batch is num_replicas times larger.

>>> s = DistributedSampler(10, num_replicas=2, rank=1, shuffle=False)
>>> s.indices(0).tolist(), len(s)
([1, 3, 5, 7, 9], 5)
>>> DistributedSampler(5, num_replicas=2, rank=1, shuffle=False).indices(0).tolist()
[1, 3, 0]
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..distributed.launch import launched


class DistributedSampler:
    """``dataset`` (or its length) shared over ``num_replicas`` processes; this is process
    ``rank``'s share (both default to what the MPI launcher set, see
    ``distributed.launched``). ``set_epoch(e)`` chooses the epoch whose order ``__iter__``
    gives."""

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        here, size = launched()
        self.num_replicas = size if num_replicas is None else int(num_replicas)
        self.rank = here if rank is None else int(rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank must be in [0, {self.num_replicas}) for num_replicas="
                             f"{self.num_replicas}, got {self.rank}")
        self.n = dataset if isinstance(dataset, int) else len(dataset)
        if self.n < 1:
            raise ValueError("DistributedSampler needs a non-empty dataset")
        if drop_last and self.n < self.num_replicas:
            raise ValueError(f"{self.n} images cannot be shared by {self.num_replicas} "
                             f"processes with drop_last")
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        per = self.n // self.num_replicas if drop_last else -(-self.n // self.num_replicas)
        self.num_samples = per

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """This process's indices for ``epoch``."""
        order = (np.random.default_rng([self.seed, epoch]).permutation(self.n)
                 if self.shuffle else np.arange(self.n))
        total = self.num_samples * self.num_replicas
        if total > self.n:  # repeat the first indices (as often as needed) to even it out
            order = np.resize(order, total)
        return order[:total][self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices(self.epoch).tolist())

    def __len__(self) -> int:
        return self.num_samples
