"""MNIST from the original IDX files (``train-images-idx3-ubyte[.gz]`` and
``train-labels-idx1-ubyte[.gz]``), with the headers validated against the file sizes.

IDX: a big-endian header (two zero bytes, a type code 0x08 for unsigned bytes, the number
of dimensions, then one uint32 per dimension) followed by the data.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from .dataset import ArrayDataset

MAX_BYTES = 256 * 2**20


def read_idx(path: str | Path, expect_dims: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed or raw)."""
    path = Path(path)
    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"{path}: larger than {MAX_BYTES:,} bytes; not an MNIST file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt gzip stream ({e})") from None
    if len(raw) > MAX_BYTES:
        raise ValueError(f"{path}: larger than {MAX_BYTES:,} bytes; not an MNIST file")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: IDX type code 0x{raw[2]:02x}; MNIST files hold unsigned "
                         "bytes (0x08)")
    ndim = raw[3]
    if ndim != expect_dims:
        raise ValueError(f"{path}: {ndim} dimensions in the header, expected {expect_dims} "
                         f"({'images' if expect_dims == 3 else 'labels'} file)")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ValueError(f"{path}: truncated header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(dims)  # exact: NumPy's int64 product would wrap for huge headers
    if len(raw) - head != size:
        raise ValueError(f"{path}: header says {dims} = {size:,} bytes of data, the file has "
                         f"{len(raw) - head:,} (truncated or padded)")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"{root} has no {stem}[.gz]: run `convnetpy data download mnist "
                            f"--root {root}` or put the original MNIST IDX files there")


def load_mnist(root: str | Path | None = None, train: bool = True,
               download: bool = False) -> ArrayDataset:
    """MNIST images as uint8 (N, 1, 28, 28) with their labels, from the IDX files in
    ``root`` (default the cache, ``$CONVNETPY_DATA/mnist``); ``download=True`` first
    fetches the official files that are missing (torchvision's files and checksums)."""
    from .download import default_root, download_mnist

    root = Path(root) if root is not None else default_root("mnist")
    if download:
        download_mnist(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder with the MNIST IDX files: run "
                                f"`convnetpy data download mnist --root {root}` or call "
                                "load_mnist(root, download=True)")
    prefix = "train" if train else "t10k"
    images = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"), 3)
    labels = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"), 1)
    if min(images.shape[1:]) < 1:
        raise ValueError(f"{root}: the header declares images of {images.shape[1]}x"
                         f"{images.shape[2]} pixels")
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} images but {len(labels)} labels")
    return ArrayDataset(images[:, None].copy(), labels.astype(np.int64),
                        [str(i) for i in range(10)], "MNIST " + ("train" if train else "test"))
