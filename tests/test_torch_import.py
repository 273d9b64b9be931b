"""Reading torch.save state_dict files without torch: values equal torch's for every dtype and
for views of shared storages; torchvision's AlexNet, VGG-16 and ResNet-18/34 weights give the
zoo models torch's outputs; hostile, lying and broken files are refused with a clear error
and nothing in them runs."""

import collections
import io
import pickle
import zipfile

import numpy as np
import pytest
from conftest import needs_torch

import convnetpy as cp
from convnetpy import models
from convnetpy.io import torch_file as tf
from convnetpy.io.torch_file import UnsafeFileError, load_torch_state_dict, load_torch_weights

pytestmark = [needs_torch, pytest.mark.torch]
torch = pytest.importorskip("torch")
tnn = torch.nn
torch.set_num_threads(2)


# ---------------------------------------------------------------- torchvision mirrors
# Written after torchvision's definitions so that the state_dict keys are torchvision's.
class TVAlexNet(tnn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = tnn.Sequential(
            tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(True), tnn.MaxPool2d(3, 2),
            tnn.Conv2d(64, 192, 5, padding=2), tnn.ReLU(True), tnn.MaxPool2d(3, 2),
            tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(True),
            tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(True),
            tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(True), tnn.MaxPool2d(3, 2))
        self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
        self.classifier = tnn.Sequential(
            tnn.Dropout(), tnn.Linear(256 * 36, 4096), tnn.ReLU(True),
            tnn.Dropout(), tnn.Linear(4096, 4096), tnn.ReLU(True), tnn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class TVVGG(tnn.Module):
    def __init__(self, cfg, num_classes=10):
        super().__init__()
        layers, cin = [], 3
        for v in cfg:
            if v == "M":
                layers.append(tnn.MaxPool2d(2, 2))
            else:
                layers += [tnn.Conv2d(cin, v, 3, padding=1), tnn.ReLU(True)]
                cin = v
        self.features = tnn.Sequential(*layers)
        self.avgpool = tnn.AdaptiveAvgPool2d((7, 7))
        self.classifier = tnn.Sequential(
            tnn.Linear(512 * 49, 4096), tnn.ReLU(True), tnn.Dropout(),
            tnn.Linear(4096, 4096), tnn.ReLU(True), tnn.Dropout(), tnn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class TVBasicBlock(tnn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TVResNet(tnn.Module):
    def __init__(self, layers, num_classes=10):
        super().__init__()
        self.inplanes = 64
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU(inplace=True)
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.fc = tnn.Linear(512, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        down = None
        if stride != 1 or self.inplanes != planes:
            down = tnn.Sequential(tnn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                  tnn.BatchNorm2d(planes))
        layers = [TVBasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        layers += [TVBasicBlock(planes, planes) for _ in range(1, blocks)]
        return tnn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def randomise(net):
    """Random weights and BatchNorm statistics, so that every tensor matters."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.dtype == torch.int64:
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                fan_in = t[0].numel() if t.dim() > 1 else 4
                t.copy_(torch.randn(t.shape, generator=g) / fan_in ** 0.5)
    return net.eval()


@pytest.mark.parametrize("name,make,size", [
    # 61 and 138 million parameters: building, saving and loading them takes half a minute
    pytest.param("alexnet", lambda: TVAlexNet(), 96, marks=pytest.mark.heavy),
    pytest.param("vgg16", lambda: TVVGG(VGG16), 64, marks=pytest.mark.heavy),
    ("resnet18", lambda: TVResNet([2, 2, 2, 2]), 64),
    ("resnet34", lambda: TVResNet([3, 4, 6, 3]), 64),
])
@pytest.mark.slow
def test_torchvision_layouts_load_into_the_zoo(tmp_path, name, make, size):
    theirs = randomise(make())
    path = tmp_path / f"{name}.pt"
    torch.save(theirs.state_dict(), path)
    ours = models.get(name, num_classes=10).eval()
    assert load_torch_weights(ours, path) == ([], [])  # the key map is the identity
    x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    with cp.autograd.no_grad():
        got = ours(cp.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert np.abs(want).max() > 1e-3  # a dead network would compare equal trivially


# ---------------------------------------------------------------- values and dtypes
def test_values_equal_torchs_for_every_dtype_and_view(tmp_path):
    net = tnn.Sequential(tnn.Conv2d(2, 3, 3), tnn.BatchNorm2d(3), tnn.Flatten(), tnn.Linear(3, 2))
    net(torch.randn(4, 2, 3, 3))  # train-mode step: running stats and num_batches_tracked
    sd = net.state_dict()
    base = torch.arange(24, dtype=torch.float64)
    sd["shared.a"] = base[2:8].view(2, 3)  # storage offset, shares base's storage
    sd["shared.b"] = base.view(4, 6).t()  # non-contiguous view of the same storage
    sd["shared.c"] = base[::5]
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["half"] = torch.randn(3, dtype=torch.float16)
    sd["bf16"] = torch.randn(2, 2).to(torch.bfloat16)
    sd["mask"] = torch.tensor([True, False, True])
    sd["bytes"] = torch.arange(5, dtype=torch.uint8)
    sd["i32"] = torch.arange(-3, 3, dtype=torch.int32)
    sd["param"] = tnn.Parameter(torch.ones(2))
    path = tmp_path / "sd.pt"
    torch.save(sd, path)
    got = load_torch_state_dict(path)
    assert list(got) == list(sd)
    assert got["1.num_batches_tracked"].dtype == np.int64 and got["1.num_batches_tracked"] == 1
    assert got["bf16"].dtype == np.float32  # bfloat16 widened exactly
    for k, t in sd.items():
        want = (t.float() if t.dtype == torch.bfloat16 else t).detach().numpy()
        assert got[k].dtype == want.dtype and got[k].shape == want.shape, k
        np.testing.assert_array_equal(got[k], want, err_msg=k)
        assert got[k].flags.writeable, k
    got["shared.a"][0, 0] = -1
    assert got["shared.b"][2, 0] == 2  # the shared storage was not aliased


def test_file_objects_key_maps_and_strict_loading(tmp_path):
    net = tnn.Linear(3, 2)
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    got = load_torch_state_dict(buf, {"weight": "fc.weight"})
    assert list(got) == ["fc.weight", "bias"]
    np.testing.assert_array_equal(got["fc.weight"], net.weight.detach().numpy())
    ours = cp.nn.Linear(3, 2)
    buf.seek(0)
    load_torch_weights(ours, buf)
    np.testing.assert_array_equal(ours.bias.numpy(), net.bias.detach().numpy())
    path = tmp_path / "w.pt"
    torch.save({"weight": net.weight}, path)
    with pytest.raises(ValueError, match='Missing key.*"bias"'):
        load_torch_weights(ours, path)
    assert load_torch_weights(ours, path, strict=False).missing_keys == ["bias"]


# ---------------------------------------------------------------- hostile and broken files
class _Ref:
    """Pickles as torch's tensor record over a named storage, with any numbers we like."""

    def __init__(self, key, numel, offset, size, stride, storage=None):
        self.key, self.numel, self.storage = key, numel, storage or torch.FloatStorage
        self.args = (offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, (_Pid(self), *self.args)


class _Pid:
    def __init__(self, ref):
        self.ref = ref


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Pid):
            return ("storage", obj.ref.storage, obj.ref.key, "cpu", obj.ref.numel)
        return None


def archive(path, obj=None, members=None, pkl=None, byteorder=b"little"):
    """A torch.save-shaped zip holding ``pkl`` (or the pickle of ``obj``) and ``members``."""
    if pkl is None:
        buf = io.BytesIO()
        _Pickler(buf, protocol=2).dump(obj)
        pkl = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/data.pkl", pkl)
        z.writestr("m/byteorder", byteorder)
        for k, v in (members or {}).items():
            z.writestr(f"m/data/{k}", v)
    return path


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def test_code_execution_payloads_are_refused_before_running(tmp_path):
    marker = tmp_path / "pwned"
    for proto in (2, 4):
        path = archive(tmp_path / f"evil{proto}.pt",
                       pkl=pickle.dumps({"w": Evil(marker)}, protocol=proto))
        with pytest.raises(UnsafeFileError, match=r"(posix|os|nt)\.system.*refused"):
            load_torch_state_dict(path)
    # the global's names fetched from the memo, out of the pre-scan's sight
    hidden = (b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94\x8c\x01a\x8c\x01b00"
              + b"h\x00h\x01\x93\x8c" + bytes([len(f"touch {marker}")])
              + f"touch {marker}".encode() + b"\x85R.")
    with pytest.raises(UnsafeFileError, match="refused"):
        load_torch_state_dict(archive(tmp_path / "hidden.pt", pkl=hidden))
    with pytest.raises(UnsafeFileError, match=r"builtins\.eval"):
        load_torch_state_dict(archive(tmp_path / "eval.pt",
                                      pkl=b"\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R."))
    assert not marker.exists()  # nothing ran
    bad_pid = b"\x80\x02}X\x01\x00\x00\x00w(X\x06\x00\x00\x00moduleX\x01\x00\x00\x00xtQs."
    with pytest.raises(UnsafeFileError, match="unknown persistent id"):
        load_torch_state_dict(archive(tmp_path / "pid.pt", pkl=bad_pid))
    # a BUILD aimed at the shared storage-type marker fails and does not poison later loads
    build = (b"\x80\x02ctorch\nFloatStorage\n(N}X\x04\x00\x00\x00name"
             b"X\x0b\x00\x00\x00BoolStoragestb0}.")
    with pytest.raises(ValueError, match="cannot decode data.pkl"):
        load_torch_state_dict(archive(tmp_path / "build.pt", pkl=build))
    torch.save({"w": torch.ones(2)}, tmp_path / "after.pt")
    assert load_torch_state_dict(tmp_path / "after.pt")["w"].dtype == np.float32
    with pytest.raises(ValueError, match="data.pkl is not a valid pickle"):
        load_torch_state_dict(archive(tmp_path / "junk.pt", pkl=b"\x80\x02\xff\xfe."))
    with pytest.raises(UnsafeFileError, match="opcode INST"):
        load_torch_state_dict(archive(tmp_path / "inst.pt", pkl=b"(ios\nsystem\n."))


F4 = np.arange(6, dtype="<f4").tobytes()


@pytest.mark.parametrize("obj,members,match", [
    ({"w": _Ref("0", 6, 0, (2, 3), (3, 1))}, {"0": F4[:12]}, "lying size"),
    ({"w": _Ref("0", 6, 1, (2, 3), (3, 1))}, {"0": F4}, "reaches element 6 of a storage"),
    ({"w": _Ref("0", 6, 0, (4, 3), (3, 1))}, {"0": F4}, "reaches element 11"),
    ({"w": _Ref("0", 6, 0, (2, 3), (-3, 1))}, {"0": F4}, "non-negative integers"),
    ({"w": _Ref("0", 6, -1, (2, 3), (3, 1))}, {"0": F4}, "offset -1 must be"),
    ({"w": _Ref("0", 6, 0, (2, 3), (3,))}, {"0": F4}, "equal length"),
    ({"w": _Ref("0", 6, 0, (2, 3), (3, 1))}, {}, "no member 'm/data/0'"),
    ({"w": _Ref("0", 10**12, 0, (2,), (1,))}, {"0": F4}, "stored bytes, over the cap"),
    ({"w": _Ref("0", 1, 0, (10**6, 10**6), (0, 0))}, {"0": F4[:4]},
     "produced bytes, over the cap"),
    ({"w": _Ref("0", 6, 0, (6,), (1,)), "v": _Ref("0", 3, 0, (3,), (1,))}, {"0": F4},
     "declared twice"),
    ([_Ref("0", 6, 0, (6,), (1,))], {"0": F4}, "expected a state_dict.*got list"),
    ({"w": 3}, {}, "expected a state_dict"),
])
def test_lying_and_oversized_records_are_refused(tmp_path, obj, members, match):
    with pytest.raises(ValueError, match=match):
        load_torch_state_dict(archive(tmp_path / "x.pt", obj, members))


def test_big_endian_files_and_the_byte_cap(tmp_path):
    data = np.arange(6, dtype=">f8")
    path = archive(tmp_path / "be.pt", {"w": _Ref("0", 6, 0, (3, 2), (1, 3),
                                                  torch.DoubleStorage)},
                   {"0": data.tobytes()}, byteorder=b"big")
    got = load_torch_state_dict(path)["w"]
    np.testing.assert_array_equal(got, np.arange(6.0).reshape(2, 3).T)
    assert got.dtype == np.float64 and got.dtype.isnative
    with pytest.raises(ValueError, match="over the cap of 40"):
        load_torch_state_dict(path, max_bytes=40)


def test_broken_archives_give_clear_errors(tmp_path):
    torch.save(tnn.Linear(30, 20).state_dict(), tmp_path / "ok.pt")
    raw = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(ValueError, match="corrupted or truncated archive"):
        load_torch_state_dict(tmp_path / "cut.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_torch_state_dict(tmp_path / "junk.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="legacy torch format"):
        load_torch_state_dict(tmp_path / "old.pt")
    with zipfile.ZipFile(tmp_path / "ok.pt") as z, \
            zipfile.ZipFile(tmp_path / "nopkl.pt", "w") as out:
        for info in z.infolist():
            if not info.filename.endswith("data.pkl"):
                out.writestr(info, z.read(info))
    with pytest.raises(ValueError, match="one <name>/data.pkl"):
        load_torch_state_dict(tmp_path / "nopkl.pt")
    flipped = bytearray(raw)
    start = raw.index(b"data/0") + 200  # inside the stored weights: the CRC catches it
    flipped[start] ^= 0xFF
    (tmp_path / "crc.pt").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupted"):
        load_torch_state_dict(tmp_path / "crc.pt")
    assert set(load_torch_state_dict(tmp_path / "ok.pt")) == {"weight", "bias"}
    assert issubclass(UnsafeFileError, ValueError) and tf.MAX_BYTES == 4 * 2**30
