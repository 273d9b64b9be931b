"""Datasets (CIFAR-10, MNIST, image folders, the bundled digits), batch transforms and the
DataLoader.

``get_dataset(spec)`` understands the CLI's ``--data`` values: ``digits`` (the bundled
8,000 MNIST digits), ``mnist[:PATH]``, ``cifar10[:PATH]``, ``folder:PATH`` and
``synthetic[:N]`` (random images with a learnable pattern, for tests and demos).
``mnist`` and ``cifar10`` without a path read the cache that ``convnetpy data download``
(or ``load_mnist(download=True)``) fills: ``$CONVNETPY_DATA``, default ``~/.cache/convnetpy``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .cifar10 import load_cifar10
from .dataset import ArrayDataset, validate_labels
from .download import ChecksumError, DownloadError, default_root, download_cifar10, download_mnist
from .folder import decode_image, load_folder
from .loader import DataLoader
from .mnist import load_mnist
from .sampler import DistributedSampler
from .transforms import (
    AlternatingFlip,
    Compose,
    Cutout,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
)

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


# the official test files of the datasets that have them (``get_dataset(..., "test")``)
TEST_FILES = {"mnist": "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]",
              "cifar10": "test_batch (in cifar-10-batches-py/ or the .tar.gz archive)"}


def get_dataset(spec: str, image_size: int = 32, split: str = "train",
                input_shape: tuple[int, int, int] | None = None) -> ArrayDataset:
    """Parse a ``--data`` value and load its ``split``: "train" (what training reads) or
    "test" (the official test files of mnist and cifar10; a clear error when they are
    missing or the data has none). ``mnist`` and ``cifar10`` without a path read the
    cache (``convnetpy data download``); ``input_shape`` (C, H, W), the model's, is the
    shape of synthetic images (default 3x32x32)."""
    kind, _, path = spec.partition(":")
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    if split == "train":
        return _load(kind, path, spec, image_size, True, input_shape)
    if kind not in TEST_FILES:
        raise ValueError(f"{spec} has no test split (only mnist and cifar10 have official "
                         f"test files); use --split val or train")
    try:
        return _load(kind, path, spec, image_size, False, input_shape)
    except (OSError, KeyError) as e:
        raise FileNotFoundError(
            f"the test split of {spec} needs {TEST_FILES[kind]}, which could not be read "
            f"({e}); add them, or choose --split val (the run's validation carve-out) or "
            f"--split train") from e


def _load(kind: str, path: str, spec: str, image_size: int, train: bool,
          input_shape: tuple[int, int, int] | None) -> ArrayDataset:
    if kind == "digits" and not path:
        return load_digits()
    if kind == "synthetic":
        try:
            n = int(path) if path else 512
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"synthetic data takes a positive number of images "
                             f"(synthetic:N), got {spec!r}")
        return synthetic(n, shape=tuple(input_shape) if input_shape else (3, 32, 32))
    if kind in ("mnist", "cifar10") and not path:
        root = default_root(kind)
        if not _cached(kind, root, train):
            raise FileNotFoundError(
                f"{kind} is not in the cache ({root}): run: convnetpy data download {kind} "
                f"(set CONVNETPY_DATA to move the cache), or give {kind}:PATH, a folder with "
                + ("the IDX files (train-images-idx3-ubyte[.gz], ...)" if kind == "mnist"
                   else "cifar-10-batches-py/ or cifar-10-python.tar.gz"))
        path = str(root)
    if kind == "mnist":
        return load_mnist(path, train=train)
    if kind == "cifar10":
        return load_cifar10(path, train=train)
    if kind == "folder":
        if not path:
            raise ValueError("folder data needs a path: --data folder:PATH")
        return load_folder(path, image_size)
    raise ValueError(f"unknown data {spec!r}: use digits, mnist[:PATH], cifar10[:PATH], "
                     "folder:PATH or synthetic[:N]")


def _cached(kind: str, root: Path, train: bool) -> bool:
    if kind == "mnist":
        prefix = "train" if train else "t10k"
        return all((root / f"{prefix}-{what}").is_file() or (root / f"{prefix}-{what}.gz")
                   .is_file() for what in ("images-idx3-ubyte", "labels-idx1-ubyte"))
    return (root / "cifar-10-batches-py").is_dir() or (root / "cifar-10-python.tar.gz").is_file()


__all__ = ["ArrayDataset", "DataLoader", "DistributedSampler", "validate_labels",
           "load_cifar10", "load_mnist", "download_mnist", "download_cifar10",
           "ChecksumError", "DownloadError", "default_root", "load_folder", "decode_image",
           "load_digits",
           "synthetic", "get_dataset", "TEST_FILES", "Compose", "Normalize", "RandomCrop",
           "RandomHorizontalFlip", "AlternatingFlip", "Cutout"]
