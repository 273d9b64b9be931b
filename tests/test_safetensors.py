"""Our safetensors reader/writer: round trips, compatibility with the reference library,
and rejection of truncated, corrupted and hostile files."""

import json

import numpy as np
import pytest

from convnetpy.io import safetensors as st

TENSORS = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array(7, dtype=np.int64),
           "c": np.zeros((0, 4), dtype=np.float64), "d": np.array([True, False]),
           "e": np.arange(5, dtype=np.uint8)}


def test_round_trip():
    out, meta = st.load(st.serialize(TENSORS, {"k": "v"}), with_metadata=True)
    assert meta == {"k": "v"} and set(out) == set(TENSORS)
    for k, v in TENSORS.items():
        assert out[k].dtype == v.dtype and out[k].shape == v.shape
        np.testing.assert_array_equal(out[k], v)
    out["a"][0, 0] = 99  # writeable copies
    header_len = int.from_bytes(st.serialize(TENSORS)[:8], "little")
    assert header_len % 8 == 0  # the data section starts aligned


def test_compatible_with_the_reference_library(tmp_path):
    ref = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not "
                              "installed (pip install safetensors)")
    path = tmp_path / "x.safetensors"
    path.write_bytes(st.serialize(TENSORS))
    theirs = ref.load_file(str(path))
    for k, v in TENSORS.items():
        np.testing.assert_array_equal(theirs[k], v)
    ref.save_file({k: v for k, v in TENSORS.items() if v.ndim}, str(path))
    ours = st.load(path.read_bytes())
    np.testing.assert_array_equal(ours["a"], TENSORS["a"])


DUP = b'{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":1}'


def _file(header: dict, body: bytes = b"") -> bytes:
    h = json.dumps(header).encode()
    return len(h).to_bytes(8, "little") + h + body


@pytest.mark.parametrize("data,match", [
    (b"\x01\x00", "truncated"),
    ((10**12).to_bytes(8, "little") + b"{}", "header length"),
    (_file({})[:-1], "header length"),
    (b"\x04\x00\x00\x00\x00\x00\x00\x00{{{{", "corrupted header"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x00[]", "not a JSON object"),
    (_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 4),
     "truncated file"),
    (_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\x00" * 4),
     "needs 8 bytes"),
    (_file({"a": {"dtype": "X9", "shape": [1], "data_offsets": [0, 4]}}, b"\x00" * 4),
     "unsupported dtype"),
    (_file({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\x00" * 4),
     "invalid shape"),
    (_file({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
            "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}, b"\x00" * 6),
     "overlapping tensors or a hole"),
    (_file({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"\x00" * 5),
     "trailing bytes"),
    (_file({"a": {"dtype": "U8", "shape": [2]}}, b"\x00" * 2), "must have dtype"),
    (_file({"__metadata__": {"k": 1}}), "must map strings to strings"),
    (len(DUP).to_bytes(8, "little") + DUP, "duplicate tensor name 'a'"),
])
def test_bad_files_are_rejected(data, match):
    with pytest.raises(ValueError, match=match):
        st.load(data, "f")
