"""CIFAR-10 from the official python layout (``cifar-10-batches-py/`` or the
``cifar-10-python.tar.gz`` archive), read without running pickle's arbitrary code.

The batches are Python-2 pickles holding numpy arrays. They are read with a restricted
unpickler: a pre-scan of every opcode (no object construction opcodes, only the numpy
globals these files use, under both numpy.core and numpy._core names, a bounded memo), a
file-size cap, dtype and shape checks in the array reconstruction, and schema validation of
the result (uint8 data of shape (N, 3072), N labels in [0, 10)). A hostile file is rejected
with a ValueError before any of its code could run.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .dataset import ArrayDataset

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]
MAX_BYTES = 64 * 2**20  # one official batch is ~31 MB
MAX_MEMO = 10_000
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]

_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype")}
_SAFE_OPS = {
    "PROTO", "FRAME", "STOP", "MARK", "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "TUPLE",
    "TUPLE1", "TUPLE2", "TUPLE3", "DICT", "LIST", "APPEND", "APPENDS", "SETITEM", "SETITEMS",
    "BININT", "BININT1", "BININT2", "LONG1", "INT", "LONG", "NONE", "NEWTRUE", "NEWFALSE",
    "BINFLOAT", "SHORT_BINSTRING", "BINSTRING", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8",
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINPUT",
    "LONG_BINPUT", "PUT", "MEMOIZE", "BINGET", "LONG_BINGET", "GET", "GLOBAL",
    "STACK_GLOBAL", "REDUCE", "BUILD", "POP", "POP_MARK", "DUP", "EMPTY_SET", "ADDITEMS",
}
_DTYPES = {"u1", "|u1", "uint8", "i8", "<i8", "int64", "i4", "<i4", "int32"}


def _reconstruct(cls, shape, typecode):
    if cls is not np.ndarray or tuple(shape) != (0,) or typecode not in (b"b", "b"):
        raise pickle.UnpicklingError("unexpected array reconstruction arguments")
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _dtype(spec, align=0, copy=1):
    spec = spec.decode("latin1") if isinstance(spec, bytes) else spec
    if spec not in _DTYPES:
        raise pickle.UnpicklingError(f"dtype {spec!r} is not allowed in a CIFAR batch")
    return np.dtype(spec)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return {"_reconstruct": _reconstruct, "ndarray": np.ndarray, "dtype": _dtype}[name]


def _prescan(data: bytes, source: str) -> None:
    try:  # a truncated or garbled stream (genops raises plain ValueErrors too)
        ops = list(pickletools.genops(data))
    except Exception as e:  # noqa: BLE001 - any failure decoding untrusted bytes
        raise ValueError(f"{source}: not a valid pickle ({e})") from None
    memo = 0
    for op, arg, _ in ops:
        if op.name not in _SAFE_OPS:
            raise ValueError(f"{source}: pickle opcode {op.name} is not allowed in a "
                             "CIFAR batch (the file may be hostile); refusing to load it")
        if op.name in ("GLOBAL",):
            mod, _, name = str(arg).partition(" ")
            if (mod, name) not in _GLOBALS:
                raise ValueError(f"{source}: pickle refers to {mod}.{name}, which a CIFAR "
                                 "batch never does; refusing to load it")
        if op.name in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):
            memo += 1
            if memo > MAX_MEMO or (isinstance(arg, int) and arg > MAX_MEMO):
                raise ValueError(f"{source}: pickle memo exceeds {MAX_MEMO} entries")


def load_batch(data: bytes, source: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR-10 batch safely; returns (images uint8 (N,3,32,32), labels)."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"{source}: {len(data):,} bytes is larger than any CIFAR-10 batch "
                         f"(cap {MAX_BYTES:,})")
    _prescan(data, source)
    try:
        obj = _Unpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any failure decoding untrusted bytes is a bad file
        raise ValueError(f"{source}: cannot decode the batch: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{source}: expected a dict, got {type(obj).__name__}")
    get = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    x, y = get.get("data"), get.get("labels")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise ValueError(f"{source}: 'data' must be a uint8 array of shape (N, 3072), got "
                         f"{getattr(x, 'dtype', type(x).__name__)} "
                         f"{getattr(x, 'shape', '')}")
    if not isinstance(y, list) or len(y) != len(x) or not all(
            isinstance(v, int) and 0 <= v < 10 for v in y):
        raise ValueError(f"{source}: 'labels' must be a list of {len(x)} integers in [0, 10)")
    return x.reshape(-1, 3, 32, 32), np.asarray(y, dtype=np.int64)


def _read_members(path: Path, names: list[str]) -> dict[str, bytes]:
    out = {}
    if path.is_dir():
        folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
        for n in names:
            f = folder / n
            if not f.is_file():
                raise FileNotFoundError(f"{f} is missing: a CIFAR-10 folder holds "
                                        f"{', '.join(TRAIN)} (and test_batch)")
            if f.stat().st_size > MAX_BYTES:
                raise ValueError(f"{f}: {f.stat().st_size:,} bytes is larger than any CIFAR-10 "
                                 "batch")
            out[n] = f.read_bytes()
        return out
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            for n in names:
                m = members.get(n)
                if m is None:
                    raise FileNotFoundError(f"{path} has no {n}")
                if m.size > MAX_BYTES:
                    raise ValueError(f"{path}:{n}: {m.size:,} bytes is larger than any "
                                     "CIFAR-10 batch")
                out[n] = tar.extractfile(m).read()
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not a readable CIFAR-10 archive ({e})") from None
    return out


def load_cifar10(root: str | Path | None = None, train: bool = True,
                 download: bool = False) -> ArrayDataset:
    """The CIFAR-10 training batches (or test_batch) from ``root``: a folder holding
    ``cifar-10-batches-py/`` (or that folder itself), or the ``cifar-10-python.tar.gz``
    archive; default the cache, ``$CONVNETPY_DATA/cifar10``. ``download=True`` first
    fetches and extracts the official archive when the batches are not there."""
    from .download import default_root, download_cifar10

    path = Path(root) if root is not None else default_root("cifar10")
    if download and not path.is_file():
        download_cifar10(path)
    archive = path / "cifar-10-python.tar.gz"
    if path.is_dir() and not (path / "cifar-10-batches-py").is_dir() and not (
            path / TRAIN[0]).is_file() and archive.is_file():
        path = archive  # not extracted: read the batches from the archive
    if root is None and not (path.is_file() or (path / "cifar-10-batches-py").is_dir()):
        raise FileNotFoundError(
            f"CIFAR-10 is not in {path}: run `convnetpy data download cifar10`, call "
            "load_cifar10(download=True), or give the folder (cifar10:PATH)")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give a cifar-10-batches-py/ folder or "
                                "the cifar-10-python.tar.gz archive, or run `convnetpy data "
                                f"download cifar10 --root {path}`")
    names = TRAIN if train else ["test_batch"]
    raw = _read_members(path, names)
    xs, ys = zip(*(load_batch(raw[n], f"{path}:{n}") for n in names))
    return ArrayDataset(np.concatenate(xs), np.concatenate(ys), list(CLASSES),
                        "CIFAR-10 " + ("train" if train else "test"))
