"""The safetensors file format (https://github.com/huggingface/safetensors), written and
read with NumPy only, and read strictly: a file that is truncated, corrupted or hostile
(header too large, bad JSON, duplicate names, unknown dtypes, offsets out of bounds, holes
or overlaps, sizes that disagree with shapes) is rejected with one ValueError naming the
problem. No pickle is involved.

Layout: an 8-byte little-endian header length, a JSON header
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``,
then the raw little-endian tensor bytes.

>>> import numpy as np, io
>>> buf = io.BytesIO()
>>> save({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, buf)
>>> load(buf.getvalue())["w"].tolist()
[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
"""

from __future__ import annotations

import json
import math
from typing import IO, Any

import numpy as np

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "BOOL": "?"}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
MAX_HEADER = 100 * 2**20
MAX_DIMS = 32


def serialize(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if np.dtype(dt) not in NAMES:
            raise TypeError(f"tensor {name!r}: dtype {arr.dtype} cannot be stored")
        data = np.ascontiguousarray(arr, dtype=dt).tobytes()
        header[name] = {"dtype": NAMES[np.dtype(dt)], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return len(head).to_bytes(8, "little") + head + b"".join(blobs)


def save(tensors: dict[str, np.ndarray], f: IO[bytes],
         metadata: dict[str, str] | None = None) -> None:
    f.write(serialize(tensors, metadata))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _unique(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate tensor name {k!r} in the header")
        out[k] = v
    return out


def load(data: bytes, source: str = "safetensors file",
         with_metadata: bool = False) -> Any:
    """Decode ``data`` into {name: ndarray} (copies, writeable)."""
    if len(data) < 8:
        raise ValueError(f"{source}: truncated ({len(data)} bytes; a header needs 8)")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER or 8 + n > len(data):
        raise ValueError(f"{source}: header length {n:,} does not fit the file of "
                         f"{len(data):,} bytes (truncated or not a safetensors file)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=_unique)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
        raise ValueError(f"{source}: corrupted header ({e})") from None
    except RecursionError:
        raise ValueError(f"{source}: corrupted header (nested too deeply)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{source}: the header is not a JSON object")
    meta = header.pop("__metadata__", {}) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError(f"{source}: __metadata__ must map strings to strings")
    body = memoryview(data)[8 + n:]
    spans, out = [], {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{source}: entry {name!r} must have dtype, shape, data_offsets")
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dt not in DTYPES:
            raise ValueError(f"{source}: tensor {name!r} has unsupported dtype {dt!r}")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(_is_int(s) and 0 <= s <= len(data) for s in shape)):
            raise ValueError(f"{source}: tensor {name!r} has an invalid shape {shape!r:.80} "
                             f"(at most {MAX_DIMS} sizes, none beyond the file's length)")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(_is_int(o) for o in offs) or not 0 <= offs[0] <= offs[1]):
            raise ValueError(f"{source}: tensor {name!r} has invalid data_offsets {offs!r:.80}")
        # Python integers: a hostile shape cannot overflow the size it is checked against
        size = math.prod(shape) * np.dtype(DTYPES[dt]).itemsize
        if offs[1] - offs[0] != size:
            raise ValueError(f"{source}: tensor {name!r} of shape {tuple(shape)} and dtype {dt} "
                             f"needs {size:,} bytes, its offsets span {offs[1] - offs[0]:,}")
        if offs[1] > len(body):
            raise ValueError(f"{source}: tensor {name!r} ends at byte {offs[1]:,} of a "
                             f"{len(body):,}-byte data section (truncated file)")
        spans.append((offs[0], offs[1], name))
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            raise ValueError(f"{source}: tensor {name!r} starts at byte {begin:,}, expected "
                             f"{pos:,} (overlapping tensors or a hole in the data)")
        pos = end
    if pos != len(body):
        raise ValueError(f"{source}: {len(body) - pos:,} trailing bytes after the last tensor")
    for begin, end, name in spans:
        info = header[name]
        out[name] = np.frombuffer(body[begin:end], dtype=DTYPES[info["dtype"]]).reshape(
            info["shape"]).copy()
    return (out, meta) if with_metadata else out
