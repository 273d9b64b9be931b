"""summary(): per-layer arithmetic, totals, receptive fields, the conv-versus-dense numbers,
1x1 reductions, non-integer sizes, exports; golden text for a few models."""

import csv
import io
import json

import numpy as np
import pytest
from conftest import zoo

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import models, nn
from convnetpy.backend import select

# The CS231n notes' VGG-16 table: output volume and weights (biases not counted) per CONV/POOL/FC
CS231N_VGG16 = [
    ("CONV", (224, 224, 64), 1_728), ("CONV", (224, 224, 64), 36_864), ("POOL", (112, 112, 64), 0),
    ("CONV", (112, 112, 128), 73_728), ("CONV", (112, 112, 128), 147_456),
    ("POOL", (56, 56, 128), 0), ("CONV", (56, 56, 256), 294_912),
    ("CONV", (56, 56, 256), 589_824), ("CONV", (56, 56, 256), 589_824), ("POOL", (28, 28, 256), 0),
    ("CONV", (28, 28, 512), 1_179_648), ("CONV", (28, 28, 512), 2_359_296),
    ("CONV", (28, 28, 512), 2_359_296), ("POOL", (14, 14, 512), 0),
    ("CONV", (14, 14, 512), 2_359_296), ("CONV", (14, 14, 512), 2_359_296),
    ("CONV", (14, 14, 512), 2_359_296), ("POOL", (7, 7, 512), 0),
    ("FC", (1, 1, 4096), 102_760_448), ("FC", (1, 1, 4096), 16_777_216),
    ("FC", (1, 1, 1000), 4_096_000),
]


def test_vgg16_matches_the_cs231n_table_row_by_row():
    s = cp.summary(zoo("vgg16"), (1, 3, 224, 224))
    kinds = {"Conv2d": "CONV", "MaxPool2d": "POOL", "Linear": "FC"}
    rows = [r for r in s.rows if r["type"] in kinds]
    assert len(rows) == len(CS231N_VGG16)
    for r, (kind, (h, w, c), weights) in zip(rows, CS231N_VGG16):
        assert kinds[r["type"]] == kind, r["name"]
        shape = r["output_shape"]
        assert (shape[2:] if len(shape) == 4 else (1, 1)) == (h, w) and shape[1] == c, r["name"]
        bias = shape[1] if kind != "POOL" else 0
        assert r["params"] - bias == weights, r["name"]
        # activations of this layer: the notes' "memory" column, 4 bytes each
        if kind == "CONV":
            assert r["act_bytes"] == h * w * c * 4
    # the notes: ~24M activations (forward) per image, 138M parameters
    conv_pool_fc = sum(int(np.prod(r["output_shape"][1:])) for r in rows)
    assert round((conv_pool_fc + 224 * 224 * 3) / 1e6) == 15  # CONV/POOL/FC outputs + input
    assert round(s.total_params / 1e6) == 138


def test_columns_add_up_to_totals():
    for name, size in (("resnet20", (4, 3, 32, 32)), ("googlenet", (2, 3, 224, 224)),
                       ("lenet5_classic", (3, 1, 32, 32))):
        net = models.get(name)
        s = cp.summary(net, size, optimizer="adam")
        assert s.total_params == sum(r["params"] for r in s.rows)
        assert s.total_params == sum(p.numel() for p in net.parameters())
        assert s.trainable_params == sum(r["trainable"] for r in s.rows)
        assert s.total_macs == sum(r["macs"] for r in s.rows)
        assert s.total_flops == 2 * s.total_macs
        assert s.forward_flops == sum(r["forward_flops"] for r in s.rows) > s.total_flops
        assert s.backward_flops == sum(r["backward_flops"] for r in s.rows)
        assert s.train_flops == s.forward_flops + s.backward_flops
        assert s.activation_bytes == sum(r["act_bytes"] for r in s.rows)
        assert s.param_bytes == 4 * s.total_params
        peak = s.peak
        assert peak.bytes == peak.activations + peak.saved + peak.gradients + peak.workspace
        assert peak.activations <= s.activation_bytes
        assert s.training_bytes == (s.param_bytes + s.buffer_bytes + 2 * s.param_bytes
                                    + peak.bytes)


def test_batch_size_scales_macs_and_memory():
    net = models.get("convnetjs_cifar10")
    one, many = cp.summary(net, (1, 3, 32, 32)), cp.summary(net, (64, 3, 32, 32))
    assert many.total_macs == 64 * one.total_macs
    assert many.activation_bytes == 64 * one.activation_bytes
    assert many.rows[1]["output_shape"] == (64, 16, 32, 32)
    assert many.total_params == one.total_params


def test_summary_computes_no_convolution(monkeypatch):
    from convnetpy import functional
    from convnetpy.backend.dispatch import kernel

    def computed(*args, **kwargs):
        raise AssertionError("a convolution was computed")

    def guarded(op):  # the kernel's memory layout may be asked, not its arithmetic
        k = kernel(op)
        return k._replace(forward=computed, backward=computed) if op == "conv2d" else k

    monkeypatch.setattr(functional, "kernel", guarded)
    s = cp.summary(zoo("vgg16"), (8, 3, 224, 224))
    assert s.output_shape == (8, 1000)


def test_modes_are_restored():
    net = models.get("resnet20").train()
    bn = net.bn1
    before = bn.running_mean.numpy().copy()
    cp.summary(net, (2, 3, 32, 32))
    assert net.training and bn.training
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)
    assert int(bn.num_batches_tracked.item()) == 0


def test_every_op_counts_its_own_flops_forward_and_backward():
    net = nn.Sequential(nn.Conv2d(3, 10, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(10 * 16 * 16, 4, bias=False))
    rows = {r["type"]: r for r in cp.summary(net, (2, 3, 32, 32)).rows}
    macs = 2 * 10 * 32 * 32 * 5 * 5 * 3
    conv, relu, pool, fc = (rows[k] for k in ("Conv2d", "ReLU", "MaxPool2d", "Linear"))
    # conv: 2 x MACs + bias; backward: dW (2 x MACs) and db, no dx for the model's input
    assert conv["forward_flops"] == 2 * macs + 2 * 10 * 32 * 32
    assert conv["backward_flops"] == 2 * macs + 2 * 10 * 32 * 32
    assert (relu["forward_flops"], relu["backward_flops"]) == (2 * 10240, 2 * 2 * 10240)
    # 2x2 windows: three comparisons per output; backward routes each gradient once
    assert (pool["forward_flops"], pool["backward_flops"]) == (3 * 2 * 2560, 2 * 2560)
    fc_macs = 2 * 2560 * 4
    assert (fc["forward_flops"], fc["backward_flops"]) == (2 * fc_macs, 4 * fc_macs)
    assert rows["Flatten"]["forward_flops"] == rows["Flatten"]["backward_flops"] == 0


def test_receptive_field_of_stacked_3x3_convs_is_7():
    net = nn.Sequential(*[nn.Conv2d(8, 8, 3, padding=1) for _ in range(3)])
    s = cp.summary(net, (1, 8, 32, 32))
    assert [r["rf_size"] for r in s.rows[1:]] == [(3, 3), (5, 5), (7, 7)]
    # and with stride: 3x3/2 then 3x3 -> 3 + 2*2 = 7, jump 2
    net = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3))
    r = cp.summary(net, (1, 1, 32, 32)).rows[-1]
    assert r["rf_size"] == (7, 7) and r["rf_jump"] == (2, 2) and r["rf_start"] == (3.5, 3.5)


def test_a_users_op_declares_its_receptive_field_and_the_summary_follows_it():
    from convnetpy.autograd import Function
    from convnetpy.shape import receptive_field_step

    class MaxOf3x3(Function):  # a 3x3 stride-1 'valid' max filter, written by a user
        def forward(self, x):
            win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))
            return win.max(axis=(-2, -1))

        def receptive_field(self, rf, x):
            return receptive_field_step(rf, (3, 3), (1, 1), (0, 0))

    class Layer(nn.Module):
        def forward(self, x):
            return MaxOf3x3.apply(x)

    net = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), Layer(), Layer())
    rows = cp.summary(net, (1, 1, 32, 32)).rows
    # 3 after the conv, then each 3x3 window adds 2 * jump 2
    assert [r["rf_size"] for r in rows[1:]] == [(3, 3), (7, 7), (11, 11)]
    assert rows[-1]["rf_jump"] == (2, 2) and rows[-1]["output_shape"] == (1, 1, 11, 11)


def test_a_users_window_op_gets_the_size_formula_and_its_memory_counts():
    from convnetpy.autograd import Cost, Function, Window

    class Max2x2(Function):  # 2x2 stride-2 max pooling written by a user, no padding
        def forward(self, x):
            n, c, h, w = x.shape
            return x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(
                n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))

        def window(self, x):
            return Window((2, 2), (2, 2), ((0, 0), (0, 0)))

    class Kept(Max2x2):  # the same, keeping 64 copies of its input for backward
        def cost(self, needs, out, x):
            return Cost(3 * out.size, out.size if needs[0] else 0, saved=64 * x.nbytes)

    class Pair(Max2x2):  # an old-style (forward, backward) pair is still taken
        def cost(self, needs, out, x):
            return 3 * out.size, 0

    def net(op):
        class Layer(nn.Module):
            def forward(self, x):
                return op.apply(x)
        return nn.Sequential(nn.Conv2d(1, 2, 3), Layer())

    plain, kept, pair = (cp.summary(net(op), (4, 1, 15, 15)) for op in (Max2x2, Kept, Pair))
    row = plain.rows[-1]
    axis = "(13 + 2*0 - 2)/2 + 1 = 6.5 -> 6"
    assert row["formula"] == f"H: {axis}; W: {axis}"
    assert any("not an integer" in n for n in row["notes"])
    assert row["rf_size"] == (4, 4) and row["rf_jump"] == (2, 2)
    assert pair.rows[-1]["forward_flops"] == kept.rows[-1]["forward_flops"] == 3 * 4 * 2 * 36
    # the kept copies of the conv's output (4 x 2 x 13 x 13 floats) are held from the
    # forward pass until the op's own backward, where the step now peaks
    assert kept.peak.saved == 64 * 4 * 2 * 13 * 13 * 4
    assert kept.peak.path == "1" and plain.peak.path == "0"
    assert kept.training_bytes > plain.training_bytes + kept.peak.saved / 2


def test_param_formulas_come_from_each_layer():
    assert nn.Conv2d(3, 4, 3).param_formula() == "(3*3*3 + 1) * 4 = 112"
    assert nn.Conv2d(8, 8, 3, groups=4, bias=False).param_formula() == "(3*3*2 + 0) * 8 = 144"
    assert nn.Linear(400, 120).param_formula() == "(400 + 1) * 120 = 48,120"
    assert nn.BatchNorm2d(16).param_formula() == "2 * 16 (scale + shift) = 32"
    assert nn.BatchNorm2d(16, affine=False).param_formula() is None
    assert nn.ReLU().param_formula() is None

    class Scale(nn.Module):  # a layer without a formula of its own: its elements added
        def __init__(self):
            super().__init__()
            self.gain = nn.Parameter(np.ones((3, 1, 1), np.float32))
            self.offset = nn.Parameter(np.zeros(3, np.float32))

    assert Scale().param_formula() == "3*1*1 + 3 = 6"


def test_receptive_field_through_residual_and_branches():
    s = cp.summary(models.get("resnet20"), (1, 3, 32, 32))
    by = {r["name"]: r for r in s.rows}
    # conv1 (3) + one block (two 3x3: +4) -> 7; the shortcut keeps the block input's field
    assert by["layer1.0"]["rf_size"] == (7, 7)
    assert by["layer1.0.shortcut"]["rf_size"] == (3, 3)
    s = cp.summary(zoo("googlenet"), (1, 3, 224, 224))
    by = {r["name"]: r for r in s.rows}
    inc = by["inception3a"]["rf_size"][0]
    branches = [by[f"inception3a.branch{i}"]["rf_size"][0] for i in range(1, 5)]
    assert inc == max(branches) and len(set(branches)) > 1
    reduction = by["inception3a.branch2.0.conv"]["notes"]
    assert reduction and reduction[0].startswith("1x1 reduction 192 -> 96 channels: the "
                                                 "following 3x3 conv at "
                                                 "inception3a.branch2.1.conv costs")


def test_conv_versus_dense_numbers_for_alexnet_conv1():
    conv = nn.Sequential(nn.Conv2d(3, 96, kernel_size=11, stride=4))
    r = cp.summary(conv, (1, 3, 227, 227)).rows[1]
    assert r["output_shape"] == (1, 96, 55, 55)
    assert r["conv"]["shared_params"] == 34_944
    assert r["conv"]["unshared_params"] == 105_705_600
    assert r["conv"]["dense_params"] == 227 * 227 * 3 * 55 * 55 * 96 + 55 * 55 * 96


def test_one_by_one_reduction_reports_savings():
    net = nn.Sequential(nn.Conv2d(256, 64, 1), nn.BatchNorm2d(64), nn.ReLU(),
                        nn.Conv2d(64, 64, 3, padding=1))
    r = cp.summary(net, (1, 256, 28, 28)).rows[1]
    direct = 28 * 28 * 64 * 256 * 9
    after = 28 * 28 * 64 * 64 * 9
    own = 28 * 28 * 64 * 256
    assert r["notes"] == [
        f"1x1 reduction 256 -> 64 channels: the following 3x3 conv at 3 costs {after:,} MACs "
        f"per image instead of {direct:,}; with this layer's own {own:,} that saves "
        f"{direct - after - own:,} MACs"]


def test_non_integer_size_is_flagged_with_the_dropped_pixels():
    s = cp.summary(zoo("alexnet"), (1, 3, 224, 224))
    r = next(r for r in s.rows if r["name"] == "features.0")
    assert r["formula"] == ("H: (224 + 2*2 - 11)/4 + 1 = 55.25 -> 55; "
                            "W: (224 + 2*2 - 11)/4 + 1 = 55.25 -> 55")
    assert any("only the last 1 padding row is unused, no input pixel is dropped" in n
               for n in r["notes"])
    assert r["output_shape"] == (1, 64, 55, 55)  # floored, as PyTorch
    # where real pixels are lost the note says how many and what fits
    r = cp.summary(nn.Sequential(nn.Conv2d(3, 8, 3, stride=2)), (1, 3, 10, 11)).rows[1]
    assert r["notes"][0] == (
        "output height (10 + 2*0 - 3)/2 + 1 = 4.5 is not an integer; the last 1 row of the input "
        "is dropped. Use kernel_size=2 or 4, stride=1 or padding=(0, 1) to cover it exactly.")
    assert len(r["notes"]) == 1  # (11 - 3)/2 + 1 = 5 divides


def test_uncalled_modules_still_count():
    net = models.get("googlenet", aux_logits=True)
    s = cp.summary(net, (1, 3, 224, 224))
    aux = next(r for r in s.rows if r["name"] == "aux1")
    assert "not called" in aux["notes"][0]
    assert s.total_params == sum(p.numel() for p in net.parameters())


def test_exports():
    s = cp.summary(models.get("resnet20"), (2, 3, 32, 32))
    rows = list(csv.DictReader(io.StringIO(s.to_csv())))
    assert len(rows) == len(s.rows)
    assert sum(int(r["params"]) for r in rows) == s.total_params
    assert rows[1]["output_shape"] == "2x16x32x32"
    data = json.loads(s.to_json())
    assert data["totals"]["total_params"] == 269_722
    assert data["rows"][1]["rf_size"] == [3, 3]
    md = s.to_markdown()
    table = md.split("\n\n")[1].splitlines()  # header, separator, one line per row
    assert len(table) == len(s.rows) + 2 and "FLOPs = 2 x MACs" in md
    assert s._repr_markdown_() == md
    assert "Training memory" in str(s)


def test_bad_arguments():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        cp.summary(models.get("lenet5"), (1, 1, 32, 32), optimizer="lbfgs")
    with pytest.raises(ValueError, match="input_size must be"):
        cp.summary(models.get("lenet5"), (0, 1, 32, 32))


@pytest.mark.parametrize("name,size,fmt", [
    ("convnetjs_cifar10", (128, 3, 32, 32), "text"),
    ("resnet20", (1, 3, 32, 32), "text"),
    ("lenet5", (1, 1, 32, 32), "md"),
    ("googlenet", (1, 3, 224, 224), "text"),
])
def test_golden_summaries(golden, name, size, fmt):
    # the training-memory estimate follows the compute path's kernels (and, with the
    # compiled GEMMs, the thread count): the numpy path's is the same on every machine
    was = select.use("numpy")
    try:
        s = cp.summary(models.get(name), size, optimizer="momentum")
    finally:
        select.use(was)
    text = s.to_text() if fmt == "text" else s.to_markdown()
    golden(f"summary_{name}.{'txt' if fmt == 'text' else 'md'}", text + "\n")


def test_residual_network_written_by_hand():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return F.relu(self.conv(x) + x)

    s = cp.summary(nn.Sequential(Block(), Block()), (1, 4, 8, 8))
    assert [r["name"] for r in s.rows] == ["(model)", "0", "0.conv", "1", "1.conv"]
    assert s.rows[1]["act_bytes"] == 2 * 4 * 8 * 8 * 4  # the add and the relu
