"""convnetpy.io.onnx_load: ONNX files built independently (torch.onnx.export, onnx.helper by
hand) are loaded and their outputs compared with onnxruntime's; round trip with our own
exporter; a loaded model fine-tunes; bad files and unsupported nodes give clear errors."""

from __future__ import annotations

import copy
import io
import sys
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import convnetpy as cp  # noqa: E402
from convnetpy import functional as F  # noqa: E402
from convnetpy import nn, optim  # noqa: E402
from convnetpy.io.onnx_export import MissingOnnx  # noqa: E402
from convnetpy.io.onnx_load import OnnxModel, load  # noqa: E402

RNG = np.random.default_rng(0)


def _ort(data: bytes, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _same_as_ort(data: bytes, shape: tuple[int, ...], batches=(1, 5)) -> OnnxModel:
    model = load(data)
    for n in batches:
        x = RNG.standard_normal((n,) + shape).astype(np.float32)
        want = _ort(data, x)
        got = model(cp.tensor(x)).numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-4 * max(np.abs(want).max(), 1e-6)
    return model


# ----------------------------------------------------------------- graphs made by hand
def _graph(nodes, in_shape, out_shape, inits=(), opset=17, meta=None) -> bytes:
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9
    for k, v in (meta or {}).items():
        m.metadata_props.add(key=k, value=v)
    return m.SerializeToString()


def _w(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("mode,opset", [("constant", 17), ("reflect", 17), ("edge", 17),
                                        ("wrap", 19)])
def test_pad_modes_match_onnxruntime(mode, opset):
    pads = np.array([0, 0, 1, 2, 0, 0, 2, 0], np.int64)   # top 1, left 2, bottom 2, right 0
    ins = ["x", "pads", "v"] if mode == "constant" else ["x", "pads"]
    inits = [("pads", pads), ("v", np.array(1.5, np.float32))]
    data = _graph([helper.make_node("Pad", ins, ["y"], mode=mode, name="pad")],
                  ["N", 2, 5, 6], ["N", 2, 8, 8], inits, opset=opset)
    model = _same_as_ort(data, (2, 5, 6))
    if mode == "constant":
        assert model(cp.zeros(1, 2, 5, 6)).numpy()[0, 0, 0, 0] == 1.5


def test_asymmetric_and_same_padding_of_window_ops_match_onnxruntime():
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv/asym",
                         pads=[1, 0, 2, 1], strides=[2, 1]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], name="conv_same", auto_pad="SAME_UPPER",
                         strides=[2, 2], group=2),
        helper.make_node("MaxPool", ["c2"], ["p1"], name="max", kernel_shape=[2, 2],
                         pads=[0, 0, 1, 1], strides=[2, 2]),
        helper.make_node("AveragePool", ["c1"], ["a0"], name="avg0", kernel_shape=[3, 3],
                         pads=[1, 1, 2, 0], strides=[2, 2], count_include_pad=0),
        helper.make_node("AveragePool", ["a0"], ["a1"], name="avg1", kernel_shape=[2, 2],
                         pads=[0, 1, 1, 0], count_include_pad=1),
        helper.make_node("GlobalAveragePool", ["a1"], ["g"], name="gap"),
        helper.make_node("Reshape", ["p1", "shape"], ["r"], name="flat"),
        helper.make_node("Reshape", ["g", "shape"], ["gr"], name="flat_g"),
        helper.make_node("MatMul", ["r", "wm"], ["mm"], name="fc"),
        helper.make_node("Add", ["mm", "bm"], ["fc_out"], name="fc_bias"),
        helper.make_node("Mul", ["gr", "half"], ["gm"], name="scale"),
        helper.make_node("Gemm", ["gm", "wg"], ["gemm"], name="fc2"),   # transB=0
        helper.make_node("Concat", ["fc_out", "gemm"], ["cat"], name="cat", axis=1),
        helper.make_node("Sigmoid", ["cat"], ["y"], name="sig"),
    ]
    inits = [("w1", _w(4, 3, 3, 2)), ("b1", _w(4)), ("w2", _w(6, 2, 3, 3)),
             ("shape", np.array([0, -1], np.int64)), ("wm", _w(6 * 2 * 2, 5)),
             ("bm", _w(5)), ("half", np.array(0.5, np.float32)), ("wg", _w(4, 3))]
    data = _graph(nodes, ["N", 3, 11, 7], ["N", 8], inits)
    model = _same_as_ort(data, (3, 11, 7))
    # the MatMul + Add became one Linear holding both constants, in PyTorch's layout
    fc = model.fc
    assert isinstance(fc, nn.Linear) and fc.bias is not None
    assert np.array_equal(fc.weight.numpy(), dict(inits)["wm"].T)
    assert model.onnx_initializers["bm"] == "fc.bias"
    assert model.onnx_names["conv_asym"] == "conv/asym"
    # float64 converts the constants too; a deep copy runs on its own layers
    x = RNG.standard_normal((2, 3, 11, 7))
    want = model(cp.tensor(x.astype(np.float32))).numpy()
    twin = copy.deepcopy(model).double()
    got = twin(cp.tensor(x)).numpy()
    assert got.dtype == np.float64 and np.allclose(got, want, rtol=1e-4, atol=1e-6)
    twin.fc2.weight.data[...] *= 2.0
    assert not np.allclose(twin(cp.tensor(x)).numpy(), want, atol=1e-3)
    assert np.array_equal(model(cp.tensor(x.astype(np.float32))).numpy(), want)


def test_shape_arithmetic_transposed_weights_and_gelu_match_onnxruntime():
    """torch-style flatten (Shape -> Gather -> Unsqueeze -> Concat -> Reshape), MatMul by a
    Transpose of a constant, zeros of the batch's size (Shape -> Slice -> Concat -> Expand),
    Slice with a step, Gelu (opset 20)."""
    nodes = [
        helper.make_node("Slice", ["x", "s0", "s1", "ax", "st"], ["xs"], name="every_other"),
        helper.make_node("Shape", ["xs"], ["shp"], name="shape"),
        helper.make_node("Gather", ["shp", "zero"], ["n"], name="batch", axis=0),
        helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "minus1"], ["to"], name="spec", axis=0),
        helper.make_node("Reshape", ["xs", "to"], ["flat"], name="flatten"),
        helper.make_node("Transpose", ["w"], ["wt"], name="wT", perm=[1, 0]),
        helper.make_node("MatMul", ["flat", "wt"], ["mm"], name="fc"),
        helper.make_node("Slice", ["shp", "zero1", "one1"], ["n_only"], name="n_only"),
        helper.make_node("Concat", ["n_only", "five"], ["zshape"], name="zshape", axis=0),
        helper.make_node("Expand", ["bias"], ["zeros"], name="expand"),
        helper.make_node("Add", ["mm", "zeros"], ["sum"], name="plus"),
        helper.make_node("Gelu", ["sum"], ["y"], name="gelu"),
    ]
    nodes[10].input.append("zshape")
    inits = [("s0", np.array([0, 1], np.int64)), ("s1", np.array([9, 100], np.int64)),
             ("ax", np.array([2, 3], np.int64)), ("st", np.array([2, 2], np.int64)),
             ("zero", np.array(0, np.int64)), ("zero1", np.array([0], np.int64)),
             ("one1", np.array([1], np.int64)), ("minus1", np.array([-1], np.int64)),
             ("five", np.array([5], np.int64)), ("w", _w(5, 2 * 3 * 2)),
             ("bias", _w(1, 5))]
    data = _graph(nodes, ["N", 2, 6, 5], ["N", 5], inits, opset=20)
    model = _same_as_ort(data, (2, 6, 5))
    assert np.array_equal(model.fc.weight.numpy(), dict(inits)["w"])
    assert model.onnx_initializers["w"] == "fc.weight"


def test_metadata_is_exposed_with_json_values_decoded():
    data = _graph([helper.make_node("Relu", ["x"], ["y"], name="r")], ["N", 4], ["N", 4],
                  meta={"classes": '["cat", "dog"]', "author": "me"})
    model = load(data)
    assert model.onnx_metadata == {"classes": ["cat", "dog"], "author": "me"}
    assert model.onnx_opset == 17


# ----------------------------------------------------------------- graphs made by torch
def _torch_onnx(module, shape) -> bytes:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter is deprecated, not gone
        torch.onnx.export(module.eval(), (torch.randn(1, *shape),), buf, dynamo=False,
                          input_names=["x"], output_names=["y"], opset_version=17,
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                          training=torch.onnx.TrainingMode.PRESERVE)   # keep BN nodes
    return buf.getvalue()


def _torch_models():
    torch = pytest.importorskip("torch")
    tn = torch.nn

    class Block(tn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = tn.Conv2d(4, 4, 3, padding=1, bias=False), tn.BatchNorm2d(4)
            self.conv2 = tn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            y = self.conv2(torch.relu(self.bn1(self.conv1(x))))
            return torch.cat([torch.relu(y + x), torch.sigmoid(x)], 1)

    stem = tn.Sequential(
        tn.Conv2d(3, 6, 3, stride=2, padding=1), tn.BatchNorm2d(6), tn.LeakyReLU(0.2),
        tn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=3), tn.ReLU(),
        tn.MaxPool2d(3, 2, ceil_mode=True), tn.AvgPool2d(3, 1, padding=1,
                                                         count_include_pad=False),
        tn.Flatten(), tn.Linear(6 * 4 * 4, 7), tn.Tanh(), tn.Linear(7, 5), tn.Softmax(1))
    res = tn.Sequential(tn.Conv2d(3, 4, 1), Block(), tn.BatchNorm2d(8),
                        tn.AdaptiveAvgPool2d(1), tn.Flatten(), tn.Linear(8, 3))
    for m in (stem, res):   # non-trivial BN statistics
        for bn in (b for b in m.modules() if isinstance(b, tn.BatchNorm2d)):
            bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(0.5, 1.5), bn.bias.data.uniform_(-0.5, 0.5)
    return {"stem": (stem, (3, 15, 15)), "residual": (res, (3, 6, 6))}


@pytest.mark.torch
@pytest.mark.parametrize("name", ["stem", "residual"])
def test_torch_exported_models_match_onnxruntime(name):
    module, shape = _torch_models()[name]
    data = _torch_onnx(module, shape)
    model = _same_as_ort(data, shape)
    # every weight landed in the state_dict, under the recorded key
    state = model.state_dict()
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(data)
             .graph.initializer}
    assert model.onnx_initializers
    for init, key in model.onnx_initializers.items():
        value = state[key].numpy()
        assert np.array_equal(value, inits[init]) or np.array_equal(value, inits[init].T)
    if name == "stem":
        assert [type(m).__name__ for m in model.children()][:6] == [
            "Conv2d", "BatchNorm2d", "LeakyReLU", "Conv2d", "ReLU", "MaxPool2d"]
        assert cp.summary(model, (1,) + shape).total_params == sum(
            p.numel() for p in module.parameters())


@pytest.mark.torch
def test_loaded_model_fine_tunes():
    module, shape = _torch_models()["residual"]
    model = load(_torch_onnx(module, shape)).train()
    x = cp.tensor(RNG.standard_normal((6,) + shape).astype(np.float32))
    target = cp.tensor(np.array([0, 1, 2, 0, 1, 2]))
    opt = optim.SGD(model.parameters(), lr=0.05)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after = model.state_dict()
    conv_w = model.onnx_initializers["0.weight"]
    assert not np.allclose(before[conv_w], after[conv_w].numpy())
    assert losses[-1] < losses[0]


# ----------------------------------------------------------------- our own exporter
ZOO = [("lenet5", (1, 1, 32, 32)), ("convnetjs_cifar10", (1, 3, 32, 32)),
       ("resnet20", (1, 3, 32, 32)), ("googlenet", (1, 3, 64, 64))]


@pytest.mark.parametrize("name,shape", ZOO)
def test_round_trip_with_our_exporter(name, shape, tmp_path):
    exporter = pytest.importorskip("convnetpy.io.onnx_export",
                                   reason="convnetpy.io.onnx_export is not written yet")
    original = cp.models.get(name, num_classes=10).eval()
    path = tmp_path / f"{name}.onnx"
    exporter.export(original, shape, path, classes=[str(i) for i in range(10)])
    model = load(path)
    assert model.onnx_metadata["classes"] == [str(i) for i in range(10)]
    x = cp.tensor(RNG.standard_normal((2,) + shape[1:]).astype(np.float32))
    want, got = original(x).numpy(), model(x).numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    state, theirs = model.state_dict(), original.state_dict()
    mapped = {k: v for k, v in model.onnx_initializers.items() if k in theirs}
    assert mapped, "the exporter names initializers after the state_dict keys"
    for key, ours in mapped.items():
        a, b = theirs[key].numpy(), state[ours].numpy()
        assert np.array_equal(a, b if a.shape == b.shape else b.T), key
        path, leaf = key.rsplit(".", 1)   # layers are named after their path
        assert ours.endswith(f"{path.replace('.', '_')}.{leaf}"), (key, ours)
    trained = {k for k, v in theirs.items() if not k.endswith("num_batches_tracked")}
    assert trained <= set(mapped), sorted(trained - set(mapped))[:5]


@pytest.mark.parametrize("opset", [17, 20])   # GELU as Erf steps before opset 20
def test_gelu_round_trip_and_erf_gradient(opset):
    exporter = pytest.importorskip("convnetpy.io.onnx_export",
                                   reason="convnetpy.io.onnx_export is not written yet")
    net = nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 3)).double()
    data = exporter.to_onnx(net, np.zeros((1, 4)), opset=opset).SerializeToString()
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert ("Erf" in ops) == (opset < 20)
    x = cp.tensor(RNG.standard_normal((5, 4)))
    assert np.allclose(load(data)(x).numpy(), net(x).numpy(), rtol=1e-10, atol=1e-12)
    # the gradient of erf, against its closed form 2/sqrt(pi) exp(-x^2)
    from convnetpy.io.onnx_structure import Erf
    v = cp.tensor(np.linspace(-2, 2, 9), requires_grad=True)
    Erf.apply(v).sum().backward()
    assert np.allclose(v.grad.numpy(), 2 / np.sqrt(np.pi) * np.exp(-v.numpy() ** 2))


# ----------------------------------------------------------------- errors
def test_unsupported_op_names_the_node_and_lists_the_supported_ones():
    data = _graph([helper.make_node("Hardmax", ["x"], ["y"], name="hm1")], ["N", 4], ["N", 4])
    with pytest.raises(ValueError, match=r"'hm1' has an unsupported op type 'Hardmax'; "
                                         r"supported: Add, AveragePool"):
        load(data)


@pytest.mark.parametrize("node,inits,match", [
    (helper.make_node("Gemm", ["x", "w"], ["y"], name="g", transA=1),
     [("w", _w(4, 4))], r"'g' \(Gemm\): transA=1 is not supported"),
    (helper.make_node("Gemm", ["x", "w"], ["y"], name="g", alpha=2.0),
     [("w", _w(4, 4))], r"alpha=2.0 is not supported"),
    (helper.make_node("Gemm", ["x", "x"], ["y"], name="g2"),
     [], r"'g2' \(Gemm\): input 1 \(B\) must be a constant"),
    (helper.make_node("BatchNormalization", ["x", "c", "c", "c", "c"], ["y"], name="bn",
                      training_mode=1), [("c", np.ones(4, np.float32))],
     r"'bn' \(BatchNormalization\): training_mode=1"),
    (helper.make_node("Pad", ["x", "p"], ["y"], name="pd"), [("p", np.array([0, 0, -1, 0]))],
     r"'pd' \(Pad\): pads=\[0, 0, -1, 0\] is not supported \(only non-negative padding of "
     r"the last two axes\)"),
])
def test_unsupported_attributes_name_node_and_attribute(node, inits, match):
    with pytest.raises(ValueError, match=match):
        load(_graph([node], ["N", 4], ["N", 4], inits))


def test_unsupported_pool_pattern_and_input_rank():
    node = helper.make_node("MaxPool", ["x"], ["y"], name="mp", kernel_shape=[2, 2],
                            pads=[0, 0, 1, 1], ceil_mode=1)
    with pytest.raises(ValueError, match=r"'mp' \(MaxPool\): ceil_mode=1 with asymmetric"):
        load(_graph([node], ["N", 1, 4, 4], ["N", 1, 4, 4]))
    with pytest.raises(ValueError, match=r"input 'x' has rank 3; only 4-D"):
        load(_graph([helper.make_node("Relu", ["x"], ["y"])], ["N", 4, 4], ["N", 4, 4]))
    model = load(_graph([helper.make_node("Relu", ["x"], ["y"])], ["N", 4], ["N", 4]))
    with pytest.raises(ValueError, match=r"input 'x' expects a 2-D tensor, got shape"):
        model(cp.zeros(1, 4, 1))


def test_a_failing_node_is_named_at_run_time():
    data = _graph([helper.make_node("Reshape", ["x", "to"], ["y"], name="rs")], ["N", 4],
                  ["N", 7], [("to", np.array([0, 7], np.int64))])
    model = load(data)
    with pytest.raises(ValueError, match=r"ONNX node 'rs' failed on inputs of shapes "
                                         r"\[\(2, 4\), \(2,\)\]"):
        model(cp.zeros(2, 4))


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07 certainly not a protobuf \xff\xff")
    with pytest.raises(ValueError, match=r"bad.onnx' is not a valid ONNX model"):
        load(path)
    with pytest.raises(ValueError, match=r"given bytes is not a valid ONNX model"):
        load(b"\xff" * 10)


def test_missing_onnx_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingOnnx, match=r'pip install "convnetpy\[onnx\]"'):
        load(b"")
    assert issubclass(MissingOnnx, ImportError)
