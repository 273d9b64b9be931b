"""ONNX export (convnetpy.io.onnx_export, ``convnetpy export``): every zoo model and each
known trap, checked by onnx.checker (full check) and by ONNX Runtime's outputs against
convnetpy's."""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import convnetpy as cp  # noqa: E402
from convnetpy import models, nn  # noqa: E402
from convnetpy.io.onnx_export import compare, export, require_onnx, to_onnx  # noqa: E402

TOL = 1e-4


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _run(proto, x):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"input": x})[0]


def _check(model, chw, opset=17, batches=(1, 7)):
    """Export at batch 1, run at each batch size: full check, ORT == convnetpy."""
    proto = to_onnx(model, _x((1,) + chw), opset=opset)
    onnx.checker.check_model(proto, full_check=True)
    for n in batches:
        assert compare(proto, model, _x((n,) + chw, seed=n)) <= TOL, (n, type(model).__name__)
    return proto


def _ours(model, x):
    model.eval()
    with cp.no_grad():
        return model(cp.Tensor(x)).data


# ----------------------------------------------------------------- the zoo
SMALL = ["lenet5", "lenet5_classic", "convnetjs_cifar10", "cifar_quick", "airbench",
         "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]
# the ImageNet models at the smallest inputs they take (adaptive pooling does the rest)
MEDIUM = [("googlenet", 32), ("resnet18", 32), ("resnet34", 32), ("resnet50", 32)]
BIG = [("alexnet", 63)] + [(f"vgg{d}{bn}", 32) for d in (11, 13, 16, 19) for bn in ("", "_bn")]


@pytest.mark.slow
@pytest.mark.parametrize("name", SMALL)
def test_small_zoo_models_match_onnxruntime_at_batch_1_and_7(name):
    model = models.get(name)
    proto = _check(model, models.default_input_size(name))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert proto.graph.output[0].name == "logits"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_every_zoo_model_is_in_one_of_the_lists():
    listed = set(SMALL) | {n for n, _ in MEDIUM} | {n for n, _ in BIG}
    assert listed == set(models.list_models())


@pytest.mark.slow
@pytest.mark.parametrize("name,size", MEDIUM)
def test_imagenet_models_match_onnxruntime_at_a_small_input(name, size):
    _check(models.get(name, num_classes=10), (3, size, size))


@pytest.mark.heavy
@pytest.mark.parametrize("name,size", BIG)
def test_big_imagenet_models_match_onnxruntime(name, size):
    # 60-140 M weights each: copying them into the protobuf dominates (10-40 s a model)
    _check(models.get(name, num_classes=10), (3, size, size))


def _calibrate(model, x):
    """Set every batch norm's running statistics to those of its input on ``x`` (one
    evaluation pass), so that a freshly initialised deep net's output depends on its input
    (GoogLeNet's std-0.01 init otherwise shrinks every input to the same logits)."""
    def pre(module, inputs):
        a = inputs[0].data
        axes = (0,) + tuple(range(2, a.ndim))
        module.running_mean.data[:] = a.mean(axis=axes)
        module.running_var.data[:] = a.var(axis=axes)

    handles = [m.register_forward_pre_hook(pre) for m in model.modules()
               if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    _ours(model, x)
    for h in handles:
        h.remove()


def test_googlenet_with_calibrated_batch_norm_matches_and_varies_with_the_input():
    model = models.get("googlenet", num_classes=10)
    _calibrate(model, _x((8, 3, 32, 32), seed=5))
    proto = _check(model, (3, 32, 32), batches=(3,))
    out = _run(proto, _x((3, 3, 32, 32)))
    assert np.ptp(out, axis=0).max() > 0.1 * np.abs(out).max()


# ----------------------------------------------------------------- metadata, file
def test_metadata_file_and_dynamic_batch(tmp_path):
    model = models.get("lenet5", num_classes=3)
    path = tmp_path / "m.onnx"
    proto = export(model, _x((1, 1, 32, 32)), path, classes=["a", "b", "c"], name="lenet5")
    loaded = onnx.load(str(path))
    assert loaded.SerializeToString() == proto.SerializeToString()
    props = {p.key: p.value for p in loaded.metadata_props}
    assert props["name"] == "lenet5"
    assert json.loads(props["classes"]) == ["a", "b", "c"]
    assert json.loads(props["input_shape"]) == [1, 32, 32]
    assert props["convnetpy_version"] == cp.__version__
    # weights are initializers under the parameters' own names
    inits = {t.name for t in loaded.graph.initializer}
    assert {n for n, _ in model.named_parameters()} <= inits
    x = _x((5, 1, 32, 32))
    np.testing.assert_allclose(_run(loaded, x), _ours(model, x), rtol=1e-4, atol=1e-5)
    assert not list(tmp_path.glob("*.tmp*"))


def test_missing_onnx_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "convnetpy\[onnx\]"'):
        require_onnx()


# ----------------------------------------------------------------- the traps
def _shapes(proto, x):
    return _run(proto, x).shape


def test_max_pool_ceil_mode_keeps_pytorchs_output_size():
    # 8 wide, k3 s2: 3.5 windows -> 4 with ceil_mode (a leftover column); 5 wide, k2 s2 p1:
    # ceil gives 4 but the 4th window would start in the right padding -> 3 (PyTorch's rule)
    for pool, size, want in ((nn.MaxPool2d(3, 2, ceil_mode=True), 8, 4),
                             (nn.MaxPool2d(2, 2, padding=1, ceil_mode=True), 5, 3),
                             (nn.MaxPool2d(3, 2, padding=1, dilation=2, ceil_mode=True), 9, 4)):
        model = nn.Sequential(pool)
        proto = _check(model, (2, size, size))
        assert _shapes(proto, _x((1, 2, size, size))) == (1, 2, want, want)


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("ceil", [True, False])
def test_avg_pool_count_include_pad_is_explicit(include, ceil):
    model = nn.Sequential(nn.AvgPool2d(3, 2, padding=1, ceil_mode=ceil, count_include_pad=include))
    proto = _check(model, (2, 6, 6))
    pools = [n for n in proto.graph.node if n.op_type == "AveragePool"]
    assert all(any(a.name == "count_include_pad" for a in n.attribute) for n in pools)
    # a hand computation of the corner output: (x00 + x01 + x10 + x11) / (9 or 4)
    x = _x((1, 2, 6, 6))
    corner = x[0, 0, :2, :2].sum() / (9 if include else 4)
    assert np.isclose(_run(proto, x)[0, 0, 0, 0], corner, rtol=1e-5)


def test_avg_pool_divisor_override_is_a_sum_over_the_divisor():
    model = nn.Sequential(nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, divisor_override=5))
    proto = _check(model, (3, 6, 6))
    x = _x((1, 3, 6, 6))
    assert np.isclose(_run(proto, x)[0, 1, 0, 0], x[0, 1, :2, :2].sum() / 5, rtol=1e-5)


@pytest.mark.torch
def test_pooling_traps_agree_with_pytorch():
    """The ONNX graphs of the pooling traps give PyTorch's numbers (an independent
    reference for ceil_mode, count_include_pad and divisor_override together)."""
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = _x((2, 3, 7, 7))
    cases = [
        (nn.MaxPool2d(2, 2, padding=1, ceil_mode=True),
         lambda t: tf.max_pool2d(t, 2, 2, 1, ceil_mode=True)),
        (nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=True),
         lambda t: tf.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=True)),
        (nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False),
         lambda t: tf.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False)),
        (nn.AvgPool2d(2, 2, padding=1, ceil_mode=True, divisor_override=3),
         lambda t: tf.avg_pool2d(t, 2, 2, 1, ceil_mode=True, divisor_override=3)),
        (nn.AdaptiveAvgPool2d((3, 5)), lambda t: tf.adaptive_avg_pool2d(t, (3, 5))),
    ]
    for layer, ref in cases:
        got = _run(to_onnx(nn.Sequential(layer), x[:1]), x)
        want = ref(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=repr(layer))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "zeros"])
def test_padding_modes(mode):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=2, padding_mode=mode))
    proto = _check(model, (2, 7, 6), opset=19)
    if mode != "zeros":
        pads = [n for n in proto.graph.node if n.op_type == "Pad"]
        want = {"reflect": b"reflect", "replicate": b"edge", "circular": b"wrap"}[mode]
        assert [a.s for a in pads[0].attribute if a.name == "mode"] == [want]


class OptionAShortcut(nn.Module):
    """ResNet's option-A shortcut (stride-2 subsampling, zero channels added by F.pad) beside
    a crop by negative pads."""

    def forward(self, x):
        a = cp.F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))  # (N, C + 4, H / 2, W / 2)
        b = cp.F.pad(x, (-1, 0, 1, -2))  # negative pads crop
        return cp.cat([a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)], dim=1)


def test_pad_of_any_trailing_dims_and_negative_pads():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), OptionAShortcut())
    proto = _check(model, (2, 6, 6))
    pads = [n for n in proto.graph.node if n.op_type == "Pad"]
    assert len(pads) == 2


def test_circular_padding_before_opset_19_is_a_clear_error():
    model = nn.Sequential(nn.ReLU(), nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"))
    with pytest.raises(ValueError, match=r"layer '1' \(Conv2d\).*opset 19"):
        to_onnx(model, _x((1, 2, 5, 5)), opset=17)


def test_same_padding_dilation_groups_and_no_bias():
    model = nn.Sequential(
        nn.Conv2d(4, 6, 4, padding="same"),  # even kernel: 1 before, 2 after
        nn.Conv2d(6, 6, 3, padding="same", dilation=2, groups=3, bias=False),
        nn.Conv2d(6, 4, (3, 2), stride=(2, 1), padding=(1, 0), groups=2),
    )
    proto = _check(model, (4, 9, 8))
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    pads = [list(a.ints) for a in convs[0].attribute if a.name == "pads"]
    assert pads == [[1, 1, 2, 2]]
    assert len(convs[1].input) == 2  # no bias input


def test_activations_softmax_batch_norm_dropout_and_linear_on_3d():
    for opset in (17, 20):
        model = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.LeakyReLU(0.2), nn.GELU(),
            nn.Dropout(0.5), nn.Conv2d(4, 4, 1), nn.GELU("tanh"), nn.Sigmoid(),
            nn.AdaptiveAvgPool2d((3, 2)),  # 6x6 -> 3x2: equal bins
            nn.Flatten(), nn.Linear(24, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Identity(),
            nn.Linear(8, 5), nn.Softmax(dim=1))
        for m in model.modules():  # non-trivial running statistics
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.data[:] = _x(m.running_mean.shape, 3)
                m.running_var.data[:] = 1 + _x(m.running_var.shape, 4) ** 2
        proto = _check(model, (3, 8, 8), opset=opset)
        ops = {n.op_type for n in proto.graph.node}
        assert "Dropout" not in ops and "BatchNormalization" in ops
        assert ("Gelu" in ops) == (opset >= 20)


def test_adaptive_avg_pool_with_unequal_bins_is_exact():
    model = nn.Sequential(nn.AdaptiveAvgPool2d((3, 4)))  # 5x7 -> 3x4, overlapping bins
    _check(model, (2, 5, 7))
    model = nn.Sequential(nn.AdaptiveAvgPool2d(7))  # 2x2 -> 7x7 (VGG at a small input)
    _check(model, (2, 2, 2))


class _Slices(nn.Module):
    def forward(self, x):  # a reversed axis, strided slices, an integer index
        return x[..., ::-1][:, :2, 2:-1:2, :] + x[:, 1:, 2:-1:2, 0].unsqueeze(-1)


def test_indexing_and_test_time_augmentation():
    proto = _check(nn.Sequential(_Slices()), (3, 7, 5))
    assert {"Slice", "Gather"} <= {n.op_type for n in proto.graph.node}
    # flips and reflect-padded shifts around a CIFAR ResNet (nn.TTA)
    _check(nn.TTA(models.get("resnet20"), "flip-translate"), (3, 32, 32), batches=(3,))


# ----------------------------------------------------------------- what cannot be exported
class _NumpyTanh(nn.Module):
    def forward(self, x):
        return cp.Tensor(np.tanh(x.data))


class _NumpyMix(nn.Module):
    def forward(self, x):
        return x + cp.Tensor(np.tanh(x.data))


def test_a_numpy_computation_is_an_error_naming_the_layer():
    for odd in (_NumpyTanh(), _NumpyMix()):
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), odd))
        with pytest.raises(ValueError, match=r"layer '1\.1' \(_Numpy\w+\)"):
            to_onnx(model, _x((1, 1, 6, 6)))


def test_adaptive_max_pool_with_unequal_bins_is_an_error_naming_the_layer():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveMaxPool2d(3))  # 5x5 -> 3x3
    with pytest.raises(ValueError, match=r"layer '1' \(AdaptiveMaxPool2d\).*5x5 to 3x3"):
        to_onnx(model, _x((1, 1, 7, 7)))
    _check(nn.Sequential(nn.Conv2d(1, 2, 2), nn.AdaptiveMaxPool2d(3)), (1, 7, 7))  # 6 -> 3


def test_bad_arguments():
    model = nn.Sequential(nn.ReLU())
    with pytest.raises(ValueError, match="opset must be between 13"):
        to_onnx(model, _x((1, 2, 3, 3)), opset=9)
    with pytest.raises(ValueError, match="example_input must be a float batch"):
        to_onnx(model, np.zeros((2, 3, 3), dtype=np.int64))


# ----------------------------------------------------------------- the command
def test_export_command_writes_a_checked_file(digits_run, tmp_path, capsys):
    from convnetpy.cli import main
    from convnetpy.train import load_trained

    out = tmp_path / "digits.onnx"
    assert main(["export", str(digits_run), "-o", str(out), "--batch", "3"]) == 0
    printed = capsys.readouterr().out
    assert "max relative difference" in printed
    diff = float(printed.split("max relative difference")[1].split()[0])
    assert diff <= TOL
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    trained = load_trained(digits_run)
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["classes"]) == list(trained.checkpoint.meta["classes"])
    assert props["name"] == "lenet5"
    x = _x((4,) + tuple(trained.checkpoint.meta["input_shape"]))
    np.testing.assert_allclose(_run(proto, x), _ours(trained.model, x), rtol=1e-4, atol=1e-5)
