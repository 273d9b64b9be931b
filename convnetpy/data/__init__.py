"""Datasets (CIFAR-10, MNIST, image folders, the bundled digits), batch transforms and the
DataLoader.

``get_dataset(spec)`` understands the CLI's ``--data`` values: ``digits`` (the bundled
8,000 MNIST digits), ``mnist[:PATH]``, ``cifar10[:PATH]``, ``folder:PATH`` and
``synthetic[:N]`` (random images with a learnable pattern, for tests and demos).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .cifar10 import load_cifar10
from .dataset import ArrayDataset, validate_labels
from .folder import decode_image, load_folder
from .loader import DataLoader
from .mnist import load_mnist
from .sampler import DistributedSampler
from .transforms import Compose, Cutout, Normalize, RandomCrop, RandomHorizontalFlip

BUNDLED = Path(__file__).with_name("digits.npz")


def load_digits() -> ArrayDataset:
    """The bundled digits: 800 of each class from the MNIST training set, (N, 1, 28, 28)."""
    with np.load(BUNDLED, allow_pickle=False) as z:
        return ArrayDataset(z["images"], z["labels"].astype(np.int64),
                            [str(i) for i in range(10)], "bundled MNIST digits")


def synthetic(n: int = 512, seed: int = 0, shape: tuple[int, int, int] = (3, 32, 32),
              classes: int = 4) -> ArrayDataset:
    """Random uint8 images whose class is a bright square in one of four quadrants."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    x = rng.integers(0, 120, (n, c, h, w)).astype(np.uint8)
    y = rng.integers(0, classes, n)
    for k in range(classes):
        sel = y == k
        r0, c0 = (k // 2) * (h // 2), (k % 2) * (w // 2)
        x[sel, :, r0:r0 + h // 2, c0:c0 + w // 2] += 120
    return ArrayDataset(x, y, [f"quadrant{k}" for k in range(classes)], "synthetic")


def _shared(*parts: str) -> Path | None:
    for base in (os.environ.get("CONVNETPY_SHARED_DATA"), "../shared/data", "shared/data"):
        if base and Path(base, *parts).exists():
            return Path(base, *parts)
    return None


# the official test files of the datasets that have them (``get_dataset(..., "test")``)
TEST_FILES = {"mnist": "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]",
              "cifar10": "test_batch (in cifar-10-batches-py/ or the .tar.gz archive)"}


def get_dataset(spec: str, image_size: int = 32, split: str = "train") -> ArrayDataset:
    """Parse a ``--data`` value and load its ``split``: "train" (what training reads) or
    "test" (the official test files of mnist and cifar10; a clear error when they are
    missing or the data has none)."""
    kind, _, path = spec.partition(":")
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    if split == "train":
        return _load(kind, path, spec, image_size, train=True)
    if kind not in TEST_FILES:
        raise ValueError(f"{spec} has no test split (only mnist and cifar10 have official "
                         f"test files); use --split val or train")
    try:
        return _load(kind, path, spec, image_size, train=False)
    except (OSError, KeyError) as e:
        raise FileNotFoundError(
            f"the test split of {spec} needs {TEST_FILES[kind]}, which could not be read "
            f"({e}); add them, or choose --split val (the run's validation carve-out) or "
            f"--split train") from e


def _load(kind: str, path: str, spec: str, image_size: int, train: bool) -> ArrayDataset:
    if kind == "digits" and not path:
        return load_digits()
    if kind == "synthetic":
        return synthetic(int(path) if path else 512)
    if kind == "mnist":
        root = path or _shared("mnist")
        if root is None:
            prefix = "train" if train else "t10k"
            raise FileNotFoundError(f"MNIST: give mnist:PATH, a folder with "
                                    f"{prefix}-images-idx3-ubyte[.gz] and "
                                    f"{prefix}-labels-idx1-ubyte[.gz]")
        return load_mnist(root, train=train)
    if kind == "cifar10":
        return load_cifar10(path or None, train=train)
    if kind == "folder":
        if not path:
            raise ValueError("folder data needs a path: --data folder:PATH")
        return load_folder(path, image_size)
    raise ValueError(f"unknown data {spec!r}: use digits, mnist[:PATH], cifar10[:PATH], "
                     "folder:PATH or synthetic[:N]")


__all__ = ["ArrayDataset", "DataLoader", "DistributedSampler", "validate_labels",
           "load_cifar10", "load_mnist", "load_folder", "decode_image", "load_digits",
           "synthetic", "get_dataset", "TEST_FILES", "Compose", "Normalize", "RandomCrop",
           "RandomHorizontalFlip", "Cutout"]
