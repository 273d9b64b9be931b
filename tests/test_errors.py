"""Every error message a user can hit, pinned; and where torch rejects an input, we do too."""

import numpy as np
import pytest
from conftest import HAVE_TORCH, needs_torch

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import nn, optim


def test_conv_channel_mismatch_names_layer_path_and_shapes():
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 16, 5, padding=2)))
    with pytest.raises(ValueError) as e:
        net(cp.zeros(2, 4, 32, 32))
    assert str(e.value) == (
        "Conv2d(3, 16, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2)) at 0.0: expected "
        "input of shape (N, 3, H, W) (weight (16, 3, 5, 5), groups=1), got (2, 4, 32, 32): the "
        "input has 4 channels, the layer expects in_channels=3")
    assert isinstance(e.value, cp.ShapeError)


def test_conv_output_size_not_positive_shows_the_formula():
    with pytest.raises(ValueError, match=r"output height \(5 \+ 2\*1 - 9\)/1 \+ 1 = -1 is not "
                                         r"positive: the \(dilated\) kernel height 9 is larger "
                                         r"than the padded input height 7"):
        nn.Conv2d(1, 1, 9, padding=1)(cp.zeros(1, 1, 5, 20))
    with pytest.raises(ValueError, match=r"output width \(4 \+ 2\*0 - \(2\*\(3-1\)\+1\)\)/1 \+ 1"):
        F.conv2d(cp.zeros(1, 1, 9, 4), cp.zeros(1, 1, 3, 3), dilation=2)


def test_linear_after_flatten_says_the_flattened_size():
    net = nn.Sequential(nn.Conv2d(3, 20, 5, padding=2), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(500, 10))
    with pytest.raises(ValueError) as e:
        net(cp.zeros(2, 3, 8, 8))
    assert str(e.value) == (
        "Linear(in_features=500, out_features=10, bias=True) at 3: expected input (*, 500) "
        "(in_features=500), got shape (2, 320) whose last axis has 320 features. If it follows "
        "a Flatten, the flattened size is 320: use in_features=320.")


def test_batchnorm_channel_and_rank_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(16, .*\): expected 16 channels "
                                         r"\(num_features\) on axis 1, got input of shape "
                                         r"\(2, 8, 4, 4\) with 8 channels"):
        nn.BatchNorm2d(16)(cp.zeros(2, 8, 4, 4))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input"):
        nn.BatchNorm2d(3)(cp.zeros(2, 3))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training, "
                                         r"got input size \(1, 3\)"):
        nn.BatchNorm1d(3)(cp.zeros(1, 3))
    nn.BatchNorm1d(3).eval()(cp.zeros(1, 3))  # fine in evaluation


@pytest.mark.parametrize("kwargs,match", [
    (dict(padding="same", stride=2), "padding='same' is not supported for strided"),
    (dict(padding="full"), "Invalid padding string 'full'"),
    (dict(groups=2), "in_channels must be divisible by groups"),
    (dict(padding_mode="mirror"), "padding_mode must be one of"),
    (dict(stride=0), "stride must be positive"),
    (dict(padding=-1), "padding must be non-negative"),
    (dict(kernel_size=(1, 2, 3)), "kernel_size must be an int or a pair of ints"),
])
def test_conv2d_constructor_errors(kwargs, match):
    args = dict(in_channels=3, out_channels=4, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        nn.Conv2d(**args)


def test_dtype_mismatch_is_explained():
    with pytest.raises(TypeError, match="conv2d: input dtype float64 and weight dtype float32 "
                                        "differ; convert one with .float"):
        nn.Conv2d(3, 4, 3)(cp.tensor(np.zeros((1, 3, 5, 5))))


def test_pool_errors():
    with pytest.raises(ValueError, match="padding 2 should be at most half of the effective "
                                         "kernel size 3"):
        F.max_pool2d(cp.zeros(1, 1, 8, 8), 3, padding=2)
    with pytest.raises(ValueError, match=r"output height \(2 \+ 2\*0 - 3\)/3 \+ 1 = 0.666667 is "
                                         "too small"):
        nn.MaxPool2d(3)(cp.zeros(1, 1, 2, 8))
    with pytest.raises(ValueError, match=r"expected a 3-D \(C, H, W\) or 4-D \(N, C, H, W\) "
                                         r"input, got shape \(8,\)"):
        F.avg_pool2d(cp.zeros(8), 2)
    with pytest.raises(ValueError, match="output_size must be positive"):
        F.adaptive_avg_pool2d(cp.zeros(1, 1, 4, 4), 0)


def test_loss_errors():
    logits = cp.zeros(3, 4)
    with pytest.raises(ValueError, match=r"target 4 is out of bounds: class indices must be in "
                                         r"\[0, 3\] for 4 classes"):
        F.cross_entropy(logits, cp.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match=r"expected a target of shape \(3,\) for input of shape "
                                         r"\(3, 4\), got \(2,\)"):
        F.cross_entropy(logits, cp.tensor([0, 1]))
    with pytest.raises(ValueError, match="must have the input's shape"):
        F.cross_entropy(logits, cp.tensor(np.zeros((3, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match="'avg' is not a valid value for reduction"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"input shape \(3, 4\) and target shape \(3, 1\) "
                                         "differ; they must match"):
        F.mse_loss(logits, cp.zeros(3, 1))
    with pytest.raises(ValueError, match="size_average and reduce are deprecated"):
        nn.MSELoss(size_average=True)


def test_misc_errors():
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate value: -1"):
        optim.Adam(nn.Linear(2, 2).parameters(), lr=-1)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero "
                                         "dampening"):
        optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, nesterov=True)
    lin = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter "
                                         "group"):
        optim.SGD([{"params": lin.parameters()}, {"params": [lin.weight]}], lr=0.1)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        optim.lr_scheduler.StepLR(object(), 3)
    with pytest.raises(ValueError, match=r"pad must have 2 or 4 entries"):
        F.pad(cp.zeros(1, 1, 3, 3), (1, 1, 1))
    with pytest.raises(ValueError, match=r"reflect padding \(3, 0, 0, 0\) .* must be smaller"):
        F.pad(cp.zeros(1, 1, 3, 3), (3, 0, 0, 0), mode="reflect")
    with pytest.raises(TypeError, match="input must be a convnetpy Tensor or a numpy array, "
                                        "got list"):
        F.relu([1.0, 2.0])


def test_optimizer_load_state_dict_errors():
    lin = nn.Linear(2, 2)
    opt = optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    lin(cp.ones(1, 2)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    other = optim.SGD(nn.Linear(3, 2).parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="optimizer state 'momentum_buffer' for parameter 0 has "
                                         r"shape \(2, 2\), the parameter has shape \(2, 3\)"):
        other.load_state_dict(sd)
    two_groups = optim.SGD([{"params": [lin.weight]}, {"params": [lin.bias]}], lr=0.1)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        two_groups.load_state_dict(sd)


# ---------------------------------------------------------------- where torch rejects, we reject
REJECTED = [
    ("conv channel mismatch", lambda lib: lib.nn.functional.conv2d(
        lib.zeros(1, 4, 5, 5), lib.zeros(2, 3, 3, 3))),
    ("conv kernel larger than input", lambda lib: lib.nn.functional.conv2d(
        lib.zeros(1, 1, 2, 2), lib.zeros(1, 1, 3, 3))),
    ("conv same with stride", lambda lib: lib.nn.functional.conv2d(
        lib.zeros(1, 1, 5, 5), lib.zeros(1, 1, 3, 3), stride=2, padding="same")),
    ("conv groups mismatch", lambda lib: lib.nn.functional.conv2d(
        lib.zeros(1, 4, 5, 5), lib.zeros(3, 2, 3, 3), groups=2)),
    ("max pool padding too large", lambda lib: lib.nn.functional.max_pool2d(
        lib.zeros(1, 1, 5, 5), 2, padding=2)),
    ("pool window larger than input", lambda lib: lib.nn.functional.avg_pool2d(
        lib.zeros(1, 1, 2, 2), 3)),
    ("linear feature mismatch", lambda lib: lib.nn.functional.linear(
        lib.zeros(2, 3), lib.zeros(4, 5))),
    ("batch norm one value per channel", lambda lib: lib.nn.functional.batch_norm(
        lib.zeros(1, 3), None, None, training=True)),
    ("cross entropy target out of range", lambda lib: lib.nn.functional.cross_entropy(
        lib.zeros(2, 3), lib.tensor([0, 3]))),
    ("cross entropy target shape", lambda lib: lib.nn.functional.cross_entropy(
        lib.zeros(2, 3), lib.tensor([0, 1, 2]))),
    ("reflect pad too large", lambda lib: lib.nn.functional.pad(
        lib.zeros(1, 1, 2, 2), (2, 2, 0, 0), mode="reflect")),
    ("dropout p > 1", lambda lib: lib.nn.Dropout(1.2)),
    ("integer tensor requires grad", lambda lib: lib.tensor([1, 2], requires_grad=True)),
    ("reshape to wrong size", lambda lib: lib.zeros(2, 3).reshape(4, 2)),
    ("batch norm 2d on 3d", lambda lib: lib.nn.BatchNorm2d(3)(lib.zeros(2, 3, 4))),
    ("sgd negative lr", lambda lib: lib.optim.SGD([lib.nn.Parameter(lib.zeros(1))], lr=-0.1)),
]


@needs_torch
@pytest.mark.parametrize("case", REJECTED, ids=[c[0] for c in REJECTED])
def test_rejected_like_torch(case):
    import torch

    _, fn = case
    with pytest.raises((RuntimeError, ValueError, IndexError, TypeError)):
        fn(torch)
    with pytest.raises((RuntimeError, ValueError, TypeError)):
        fn(cp)


def test_rejection_table_runs_without_torch_too():
    if HAVE_TORCH:
        pytest.skip("covered by test_rejected_like_torch")
    for _, fn in REJECTED:
        with pytest.raises((RuntimeError, ValueError, TypeError)):
            fn(cp)
