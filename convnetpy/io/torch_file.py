"""PyTorch checkpoints (``torch.save(model.state_dict(), path)``, the zip format of PyTorch
>= 1.6) read into NumPy arrays without importing torch and without running pickle's
arbitrary code.

The file is a zip archive ``<name>/data.pkl`` (a protocol-2 pickle of the state_dict) plus
one raw member ``<name>/data/<key>`` per storage and ``<name>/byteorder``. The pickle is
read by a restricted unpickler:

- a pre-scan of every opcode before anything is built: only the opcodes a state_dict needs,
  only the allowed globals (below), a bounded memo and pickle size; anything else is refused
  with :class:`UnsafeFileError` naming the opcode or global;
- ``find_class`` returns this module's own stand-ins, never torch's functions: the tensor
  rebuild functions (``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``) build a
  plain record, the storage classes (``torch.FloatStorage`` ...) are dtype markers, and
  ``collections.OrderedDict`` is the real one. Persistent ids must be
  ``('storage', <storage class>, key, location, numel)``;
- then, with nothing executed, every record is checked (the storage's member exists and its
  byte length is exactly ``numel * itemsize``; sizes, strides and offsets are non-negative
  integers and every tensor lies inside its storage; the total of the stored and of the
  produced bytes stays under ``max_bytes``), and only then are the members read and the
  arrays built (in buffers of their own, never views into the archive).

Dtypes are kept (float32, float64, float16, int64 for ``num_batches_tracked``, int32/16/8,
uint8, bool), except bfloat16, which NumPy lacks: it becomes float32 exactly. Big-endian
files are converted to native order; tensors saved from a GPU load all the same. Tensors
that share one storage (views, ``storage_offset``, non-contiguous strides) come out as
separate arrays with torch's values.

A file in the legacy format (before PyTorch 1.6) is refused with a message saying how to
re-save it.

>>> import io, zipfile
>>> buf = io.BytesIO()
>>> with zipfile.ZipFile(buf, "w") as z:
...     z.writestr("m/data.pkl", b"\\x80\\x02}q\\x00.")  # an empty dict
>>> _ = buf.seek(0)
>>> load_torch_state_dict(buf)
OrderedDict()
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import IO, Any, NamedTuple

import numpy as np

__all__ = ["MAX_BYTES", "UnsafeFileError", "load_torch_state_dict", "load_torch_weights"]

MAX_BYTES = 4 * 2**30  # default cap on the stored and on the produced bytes
MAX_PICKLE = 64 * 2**20  # data.pkl of a 1000-layer state_dict is well under 1 MB
MAX_MEMO = 1_000_000

STORAGES = {"FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2",
            "BFloat16Storage": "bf16", "LongStorage": "i8", "IntStorage": "i4",
            "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
            "UntypedStorage": "u1"}
_SAFE_OPS = {
    "PROTO", "FRAME", "STOP", "MARK", "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "TUPLE",
    "TUPLE1", "TUPLE2", "TUPLE3", "DICT", "LIST", "APPEND", "APPENDS", "SETITEM", "SETITEMS",
    "BININT", "BININT1", "BININT2", "LONG1", "INT", "LONG", "NONE", "NEWTRUE", "NEWFALSE",
    "BINFLOAT", "FLOAT", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
    "SHORT_BINSTRING", "BINSTRING", "STRING", "BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE",
    "BINGET", "LONG_BINGET", "GET", "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "POP",
    "POP_MARK", "DUP", "BINPERSID", "PERSID",
}


class UnsafeFileError(ValueError):
    """The file asks for something a state_dict never needs (a foreign global, opcode or
    persistent id): it may be hostile, and it was refused before anything in it ran."""


# Immutable records (named tuples): a BUILD opcode aimed at one fails instead of changing it.
class _Storage(NamedTuple):
    key: str
    dtype: str
    numel: int


class _TensorRef(NamedTuple):
    """What the rebuild functions return: a record, checked and made an array later."""

    storage: Any
    offset: Any
    size: Any
    stride: Any


class _StorageType(NamedTuple):
    name: str


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, _TensorRef):
        raise pickle.UnpicklingError("_rebuild_parameter expects a tensor")
    return data


_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGES},
}


def _refused(source: str, module: str, name: str) -> UnsafeFileError:
    return UnsafeFileError(f"{source}: the pickle refers to {module}.{name}, which a PyTorch "
                           "state_dict never needs (the file may be hostile); refused, "
                           "nothing in it was run")


def _prescan(data: bytes, source: str) -> None:
    memo, strings = 0, []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name not in _SAFE_OPS:
                raise UnsafeFileError(f"{source}: pickle opcode {op.name} is not allowed in a "
                                      "state_dict (the file may be hostile); refused")
            if op.name == "GLOBAL":
                mod, _, name = str(arg).partition(" ")
                if (mod, name) not in _GLOBALS:
                    raise _refused(source, mod, name)
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                if (strings[-2], strings[-1]) not in _GLOBALS:
                    raise _refused(source, strings[-2], strings[-1])
            if isinstance(arg, str):
                strings = [*strings[-1:], arg]
            if op.name in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):
                memo += 1
                if memo > MAX_MEMO or (isinstance(arg, int) and arg > MAX_MEMO):
                    raise UnsafeFileError(f"{source}: pickle memo exceeds {MAX_MEMO} entries")
    except UnsafeFileError:
        raise
    except Exception as e:  # noqa: BLE001 - a truncated or garbled stream
        raise ValueError(f"{source}: data.pkl is not a valid pickle ({e})") from None


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, source: str) -> None:
        super().__init__(io.BytesIO(data))
        self.source, self.storages = source, {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _GLOBALS:  # STACK_GLOBAL names are only known here
            raise _refused(self.source, module, name)
        return _GLOBALS[(module, name)]

    def persistent_load(self, pid: Any) -> _Storage:
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType) or not isinstance(pid[2], str)
                or type(pid[4]) is not int or pid[4] < 0):
            raise UnsafeFileError(f"{self.source}: unknown persistent id {str(pid)[:80]!r}: "
                                  "expected ('storage', torch.<Type>Storage, key, location, "
                                  "numel)")
        dtype, key = STORAGES[pid[1].name], pid[2]
        old = self.storages.get(key)
        if old is not None and (old.dtype, old.numel) != (dtype, pid[4]):
            raise UnsafeFileError(f"{self.source}: storage {key!r} is declared twice with "
                                  "different types or sizes")
        self.storages[key] = old or _Storage(key, dtype, pid[4])
        return self.storages[key]


def _itemsize(dtype: str) -> int:
    return 2 if dtype == "bf16" else np.dtype(dtype).itemsize


def _check_ref(name: str, ref: _TensorRef, source: str) -> int:
    """Validate one tensor record; returns the number of elements it produces."""
    where = f"{source}: tensor {name!r}"
    if not isinstance(ref.storage, _Storage):
        raise ValueError(f"{where} has no storage")
    dims = (ref.size, ref.stride)
    if not all(isinstance(d, tuple) and all(type(v) is int and 0 <= v < 2**62 for v in d)
               for d in dims) or len(ref.size) != len(ref.stride) or len(ref.size) > 32:
        raise ValueError(f"{where}: size {ref.size!r} and stride {ref.stride!r} must be tuples "
                         "of non-negative integers of equal length")
    if type(ref.offset) is not int or ref.offset < 0:
        raise ValueError(f"{where}: storage offset {ref.offset!r} must be a non-negative int")
    numel = int(np.prod(ref.size, dtype=object))
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if numel and last >= ref.storage.numel:
        raise ValueError(f"{where} of size {ref.size} (stride {ref.stride}, offset "
                         f"{ref.offset}) reaches element {last:,} of a storage holding "
                         f"{ref.storage.numel:,} (a lying size or a corrupted file)")
    return numel


def _decode(raw: bytearray, dtype: str, big: bool) -> np.ndarray:
    """The storage's elements in native byte order; a writeable view of ``raw`` when no
    conversion is needed (``raw`` is this reader's own buffer, never the archive's)."""
    if dtype == "bf16":  # bfloat16 is the upper half of a float32
        half = np.frombuffer(raw, ">u2" if big else "<u2").astype(np.uint32)
        return (half << 16).view(np.float32)
    arr = np.frombuffer(raw, np.dtype(dtype).newbyteorder(">" if big else "<"))
    return arr if arr.dtype.isnative else arr.astype(np.dtype(dtype).newbyteorder("="))


def _read(z: zipfile.ZipFile, name: str, limit: int, source: str,
          expect: int | None = None) -> bytearray:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise ValueError(f"{source}: the archive has no member {name!r} (truncated or not "
                         "written by torch.save)") from None
    if expect is not None and info.file_size != expect:
        raise ValueError(f"{source}: {name!r} declares {expect:,} bytes in the pickle, the "
                         f"archive holds {info.file_size:,} (a lying size or a truncated file)")
    if info.file_size > limit:
        raise ValueError(f"{source}: member {name!r} declares {info.file_size:,} bytes, over "
                         f"the cap of {limit:,} (raise max_bytes if the file is trusted)")
    data = bytearray(info.file_size)
    with z.open(info) as f:  # the declared size may lie: read no more than it, then probe
        n = f.readinto(data)
        extra = f.read(1)  # also reaches the end, where zipfile checks the CRC
    if n != info.file_size or extra:
        raise ValueError(f"{source}: member {name!r} does not hold the {info.file_size:,} "
                         "bytes its header says (a corrupted archive)")
    return data


def _open(f: str | os.PathLike | IO[bytes], source: str) -> zipfile.ZipFile:
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            head = fh.read(4)
    else:
        pos = f.tell()
        head = f.read(4)
        f.seek(pos)
    if head[:1] == b"\x80":  # a bare pickle: the format torch.save wrote before 1.6
        raise ValueError(f"{source}: legacy torch format (before 1.6): re-save it with "
                         "torch.save(obj, path, _use_new_zipfile_serialization=True)")
    if head != b"PK\x03\x04":
        raise ValueError(f"{source}: not a PyTorch checkpoint (a zip archive written by "
                         f"torch.save was expected, the file starts with {head!r})")
    return zipfile.ZipFile(f)


def _load(z: zipfile.ZipFile, source: str, max_bytes: int) -> dict[str, np.ndarray]:
    pkls = [n for n in z.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pkls) != 1:
        raise ValueError(f"{source}: expected one <name>/data.pkl in the archive, found "
                         f"{len(pkls)} (not written by torch.save)")
    prefix = pkls[0][:-len("data.pkl")]
    data = _read(z, pkls[0], min(MAX_PICKLE, max_bytes), source)
    _prescan(data, source)
    up = _Unpickler(data, source)
    try:
        obj = up.load()
    except UnsafeFileError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure decoding untrusted bytes is a bad file
        raise ValueError(f"{source}: cannot decode data.pkl: {e}") from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, _TensorRef)
                                            for k, v in obj.items()):
        raise ValueError(f"{source}: expected a state_dict (a dict of names to tensors), got "
                         f"{type(obj).__name__}; save model.state_dict(), not the model or a "
                         "dict holding it")
    stored = sum(s.numel * _itemsize(s.dtype) for s in up.storages.values())
    made = sum(_check_ref(k, v, source) * _itemsize(v.storage.dtype) for k, v in obj.items())
    for what, total in (("stored", stored), ("produced", made)):
        if total > max_bytes:
            raise ValueError(f"{source}: the tensors declare {total:,} {what} bytes, over the "
                             f"cap of {max_bytes:,} (raise max_bytes if the file is trusted)")
    order = z.read(prefix + "byteorder").decode("latin1").strip() if (
        prefix + "byteorder") in z.namelist() else "little"
    if order not in ("little", "big"):
        raise ValueError(f"{source}: byteorder {order!r} must be 'little' or 'big'")
    flat = {}
    for s in up.storages.values():
        nbytes = s.numel * _itemsize(s.dtype)
        raw = _read(z, f"{prefix}data/{s.key}", nbytes, source, expect=nbytes)
        flat[s.key] = _decode(raw, s.dtype, order == "big")
    users = collections.Counter(v.storage.key for v in obj.values())
    out = collections.OrderedDict()
    for k, v in obj.items():
        base = flat[v.storage.key]
        view = np.lib.stride_tricks.as_strided(
            base[v.offset:], v.size, [s * base.itemsize for s in v.stride])
        whole = users[v.storage.key] == 1 and view.size == base.size and view.flags.c_contiguous
        out[k] = base.reshape(v.size) if whole else view.copy()  # no copy of the common case
    return out


def load_torch_state_dict(f: str | os.PathLike | IO[bytes],
                          key_map: Mapping[str, str] | Callable[[str], str] | None = None,
                          *, max_bytes: int = MAX_BYTES) -> collections.OrderedDict:
    """Read a ``torch.save(model.state_dict(), f)`` file into ``{name: ndarray}`` (in the
    file's order, writeable arrays of their own) without torch and without running code
    from the file.

    ``key_map`` renames keys (a dict old -> new, unlisted keys kept, or a function).
    ``max_bytes`` caps both the bytes stored and the bytes produced. Raises
    :class:`UnsafeFileError` (a ValueError) for anything a state_dict never holds, and
    ValueError for a corrupted, truncated, lying or oversized file.
    """
    source = str(f) if isinstance(f, (str, os.PathLike)) else "torch checkpoint"
    try:
        with _open(f, source) as z:
            out = _load(z, source, max_bytes)
    except ValueError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError,
            RuntimeError, zlib.error) as e:
        raise ValueError(f"{source}: corrupted or truncated archive ({e})") from None
    if key_map is not None:
        rename = key_map if callable(key_map) else (lambda k: key_map.get(k, k))
        renamed = collections.OrderedDict((rename(k), v) for k, v in out.items())
        if len(renamed) != len(out):
            raise ValueError(f"{source}: key_map sends several keys to one name; each key "
                             "must map to a distinct name")
        out = renamed
    return out


def load_torch_weights(model: Any, f: str | os.PathLike | IO[bytes], strict: bool = True,
                       key_map: Mapping[str, str] | Callable[[str], str] | None = None,
                       *, max_bytes: int = MAX_BYTES) -> Any:
    """Load a PyTorch state_dict file into a convnetpy ``model`` (its ``load_state_dict``
    checks keys and shapes and casts to the model's dtypes); returns its
    ``IncompatibleKeys``."""
    return model.load_state_dict(load_torch_state_dict(f, key_map, max_bytes=max_bytes),
                                 strict=strict)
