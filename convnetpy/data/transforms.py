"""Augmentation and normalisation applied to whole batches at once (vectorised).

Each transform is called as ``t(x, rng)`` on a float32 batch (N, C, H, W) with an explicit
generator, so a run is reproducible (and resumable) from its seed. A transform whose
``needs_position`` is true is also given where the batch comes from: ``index``, the
images' indices in the dataset, and ``epoch`` (the DataLoader passes both, and so does
``Compose`` to the transforms in it that want them).

>>> import numpy as np
>>> x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
>>> RandomCrop(4, padding=1)(x, np.random.default_rng(0)).shape
(2, 1, 4, 4)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class Normalize:
    """(x - mean) / std per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
        if np.any(self.std <= 0):
            raise ValueError(f"std must be positive, got {list(std)}")

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if x.shape[1] != self.mean.shape[1] and self.mean.shape[1] != 1:
            raise ValueError(f"Normalize has {self.mean.shape[1]} channel means, the batch has "
                             f"{x.shape[1]} channels")
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


class RandomCrop:
    """Pad by ``padding`` (zeros or reflection) and cut a random ``size`` window per image."""

    def __init__(self, size: int, padding: int = 4, mode: str = "constant") -> None:
        if mode not in ("constant", "reflect"):
            raise ValueError(f"mode must be 'constant' or 'reflect', got {mode!r}")
        self.size, self.padding, self.mode = size, padding, mode

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p, s = self.padding, self.size
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode=self.mode) if p else x
        if xp.shape[2] < s or xp.shape[3] < s:
            raise ValueError(f"RandomCrop({s}) needs images of at least {s - 2 * p} pixels, got "
                             f"{x.shape[2]}x{x.shape[3]}")
        n = len(x)
        dy = rng.integers(0, xp.shape[2] - s + 1, n)
        dx = rng.integers(0, xp.shape[3] - s + 1, n)
        win = sliding_window_view(xp, (s, s), axis=(2, 3))  # (N, C, PH-s+1, PW-s+1, s, s)
        return np.ascontiguousarray(win[np.arange(n), :, dy, dx])

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, padding={self.padding}, mode={self.mode!r})"


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        flip = rng.random(len(x)) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1], x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class AlternatingFlip:
    """airbench's flip: a random half of the images (chosen once from ``seed``, image by
    image) is flipped in even epochs and the other half in odd ones, so every image is seen
    both ways in each two epochs, where random flips leave a quarter of them one way.

    >>> x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4).repeat(6, axis=0)
    >>> flip = AlternatingFlip(seed=0)
    >>> even = flip(x, None, index=np.arange(6), epoch=0)[:, 0, 0, 0]
    >>> odd = flip(x, None, index=np.arange(6), epoch=1)[:, 0, 0, 0]
    >>> bool(np.all((even == 3) != (odd == 3)))   # each image flipped in exactly one
    True
    """

    needs_position = True

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def flipped(self, index: np.ndarray, epoch: int) -> np.ndarray:
        """Which of the images ``index`` this transform flips in ``epoch``."""
        return first_half(index, self.seed) ^ bool(epoch % 2)

    def __call__(self, x: np.ndarray, rng, index=None, epoch=None) -> np.ndarray:
        if index is None or epoch is None:
            raise ValueError("AlternatingFlip needs each image's dataset index and the "
                             "epoch: give it index= and epoch=, or use it as a "
                             "DataLoader's transform, which passes both")
        index = np.asarray(index)
        if index.shape != (len(x),):
            raise ValueError(f"AlternatingFlip: {len(x)} images but {index.size} indices")
        return np.where(self.flipped(index, epoch)[:, None, None, None], x[..., ::-1], x)

    def __repr__(self) -> str:
        return f"AlternatingFlip(seed={self.seed})"


def first_half(index: np.ndarray, seed: int) -> np.ndarray:
    """One pseudo-random bit per dataset index (splitmix64's finaliser of index and seed):
    stateless, so it needs neither the dataset's size nor anything saved to resume."""
    offset = np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64)
    with np.errstate(over="ignore"):  # the products wrap modulo 2^64, as the hash means
        z = np.asarray(index, dtype=np.uint64) + offset
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return ((z ^ (z >> np.uint64(31))) & np.uint64(1)).astype(bool)


class Cutout:
    """Zero one random ``size`` x ``size`` square per image (it may overlap the border)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, _, h, w = x.shape
        cy, cx = rng.integers(0, h, n), rng.integers(0, w, n)
        rows, cols = np.arange(h), np.arange(w)
        half = self.size // 2
        my = (rows[None] >= (cy - half)[:, None]) & (rows[None] < (cy - half + self.size)[:, None])
        mx = (cols[None] >= (cx - half)[:, None]) & (cols[None] < (cx - half + self.size)[:, None])
        keep = ~(my[:, :, None] & mx[:, None, :])
        return x * keep[:, None].astype(x.dtype)

    def __repr__(self) -> str:
        return f"Cutout({self.size})"


class Compose:
    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    @property
    def needs_position(self) -> bool:
        return any(getattr(t, "needs_position", False) for t in self.transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator, **position) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng, **position) if getattr(t, "needs_position", False) else t(x, rng)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"
