"""DataLoader: seeded shuffling, drop_last, batch transforms and background prefetching.

Everything random is derived from (seed, epoch, batch index): the order of epoch e is
``default_rng([seed, e])``'s permutation and batch b's augmentation uses
``default_rng([seed, e, b])``. With a ``sampler`` (a DistributedSampler) the order of epoch
e is the sampler's share of it, and the augmentation of process r of several uses
``default_rng([seed, e, b, r])``. A run therefore resumes exactly at any batch with no state
to save but the epoch and batch index. A background thread prepares the next batches while
the engine computes (NumPy releases the GIL in its copies and arithmetic).
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

import numpy as np

from .dataset import ArrayDataset
from .sampler import DistributedSampler


class DataLoader:
    def __init__(self, dataset: ArrayDataset, batch_size: int = 64, shuffle: bool = False,
                 seed: int = 0, drop_last: bool = False,
                 transform: Callable | None = None, prefetch: int = 2,
                 sampler: DistributedSampler | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if len(dataset) == 0:
            raise ValueError(f"{dataset.name} is empty")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.seed, self.drop_last, self.transform = seed, drop_last, transform
        self.prefetch = prefetch
        self.sampler = sampler
        if sampler is not None and sampler.n != len(dataset):
            raise ValueError(f"the sampler shares {sampler.n} images, the dataset has "
                             f"{len(dataset)}")
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        if self.sampler is not None:
            return self.sampler.indices(epoch)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def make_batch(self, index: np.ndarray, epoch: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        x = self.dataset.images[index]
        x = x.astype(np.float32) * np.float32(1 / 255)
        if self.transform is not None:
            key = [self.seed, epoch, b]
            if self.sampler is not None and self.sampler.num_replicas > 1:
                key.append(self.sampler.rank)  # each process its own augmentation
            position = ({"index": index, "epoch": epoch}
                        if getattr(self.transform, "needs_position", False) else {})
            x = self.transform(x, np.random.default_rng(key), **position)
        y = self.dataset.labels[index]
        return np.ascontiguousarray(x, dtype=np.float32), y

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The batches of ``epoch`` from batch ``start`` on (prefetched in the background)."""
        order = self.order(epoch)
        bounds = [(b, order[b * self.batch_size:(b + 1) * self.batch_size])
                  for b in range(start, len(self))]
        if self.prefetch <= 0:
            for b, idx in bounds:
                yield self.make_batch(idx, epoch, b)
            return
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def produce():
            try:
                for b, idx in bounds:
                    item = self.make_batch(idx, epoch, b)
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(None)
            except BaseException as e:  # forwarded to the consumer
                q.put(e)

        worker = threading.Thread(target=produce, daemon=True, name="convnetpy-prefetch")
        worker.start()
        try:
            while True:
                item = q.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            worker.join(timeout=5)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)
