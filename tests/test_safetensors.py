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


def _twins():
    """A convnetpy network and its torch twin: the same layers, so PyTorch's state_dict keys
    (0.weight, 1.running_var, 1.num_batches_tracked, 4.bias, ...)."""
    torch = pytest.importorskip("torch")
    import convnetpy as cp
    from convnetpy import nn

    ours = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                 torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(100, 3))
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    ours(cp.tensor(x))  # a training step: running statistics that differ from their defaults
    return cp, torch, ours.eval(), theirs.eval(), x


def _outputs(cp, torch, ours, theirs, x):
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    with cp.autograd.no_grad():
        got = ours(cp.tensor(x)).numpy()
    return got, want


@pytest.mark.torch
def test_our_files_load_in_safetensors_torch(tmp_path):
    ref = pytest.importorskip("safetensors.torch", reason="the safetensors package is not "
                              "installed (pip install safetensors)")
    cp, torch, ours, theirs, x = _twins()
    path = tmp_path / "ours.safetensors"
    path.write_bytes(st.serialize({k: v.numpy() for k, v in ours.state_dict().items()}))
    loaded = ref.load_file(str(path))
    assert loaded["1.num_batches_tracked"].dtype == torch.int64
    theirs.load_state_dict(loaded)  # strict: PyTorch's keys, shapes and dtypes
    got, want = _outputs(cp, torch, ours, theirs, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.abs(want).max() > 1e-2


@pytest.mark.torch
def test_safetensors_torch_files_load_into_our_model(tmp_path):
    ref = pytest.importorskip("safetensors.torch", reason="the safetensors package is not "
                              "installed (pip install safetensors)")
    cp, torch, ours, theirs, x = _twins()
    with torch.no_grad():
        for t in theirs.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5)
    path = tmp_path / "theirs.safetensors"
    ref.save_file(theirs.state_dict(), str(path))
    ours.load_state_dict(st.load(path.read_bytes(), str(path)))
    got, want = _outputs(cp, torch, ours, theirs, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert ours.state_dict()["1.num_batches_tracked"].numpy() == 0
