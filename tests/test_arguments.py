"""Arguments are checked where they are given: every public layer of convnetpy.nn and every
F function rejects a wrong size, stride, padding, probability, eps, momentum, choice or dtype
at the call, with a ValueError (wrong value) or TypeError (wrong type) whose message names
the layer or function, the argument and the value: ``Linear(in_features=-1): ...``.

The tables cover every layer that convnetpy.nn exports (found by introspection; a new layer
without a row fails) and every constructor argument (each one is checked or listed as free
with a reason). F.pad's N-d padding is tested against torch forward and backward."""

import inspect
import itertools
import re
from dataclasses import dataclass, field

import numpy as np
import pytest
from conftest import needs_torch

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import nn
from convnetpy.autograd import gradcheck
from convnetpy.shape import ShapeError


@dataclass(frozen=True)
class Kind:
    """What an argument takes: values that must be refused (with the exception type) and
    values that must still work."""

    bad: tuple
    good: tuple


V, T = ValueError, TypeError
_INT_TYPES = ((2.5, T), (True, T), ("3", T), (None, T))
POS = Kind(((-1, V), (0, V)) + _INT_TYPES, (1, 2, np.int64(2)))
ANY_INT = Kind(((2.5, T), (True, T), ("1", T), (None, T)), (-1, 0, 1))
OPT_INT = Kind(((2.5, T), (True, T), ("1", T)), (None, 0, -1))
_PAIR_BAD = (((1, 2.5), T), ((1, True), T), ((1, 2, 3), V), ("33", T), (None, T))
POS_PAIR = Kind(POS.bad[:4] + (((1, 0), V), ((-1, 2), V)) + _PAIR_BAD, (1, (1, 2), [2, 1]))
NONNEG_PAIR = Kind(((-1, V), (2.5, T), (True, T), ((0, -1), V)) + _PAIR_BAD, (0, 1, (0, 1)))
OUTPUT_SIZE = Kind(((-1, V), (0, V), (2.5, T), (True, T), ((2, 0), V), ((2, 2.5), T),
                    ((2, 2, 2), V), (None, T)), (1, 3, (2, 3), (None, 2), (None, None)))
PROB = Kind(((-0.1, V), (1.5, V), (float("nan"), V), ("0.5", T), (True, T), (None, T)),
            (0, 0.0, 0.5, 1, 1.0))
MOMENTUM = Kind(((-0.1, V), (1.5, V), ("0.1", T), (True, T)), (None, 0.0, 0.1, 1.0))
EPS = Kind(((0, V), (-1e-5, V), ("1e-5", T), (True, T), (None, T)), (1e-5, 1e-12, 1))
NUMBER = Kind((("0.1", T), (True, T), (None, T)), (0.0, -0.5, 0.2, 1))
FLAG = Kind(((1, T), (0, T), ("yes", T), (None, T)), (True, False, np.bool_(True)))
DTYPE = Kind((("int32", T), ("nonsense", T), (np.int64, T), (3, T)),
             (None, np.float64, "float32", np.dtype(np.float64)))
DIVISOR = Kind(((0, V), (2.5, T), (True, T), ("2", T)), (None, 2, -2))
DEPRECATED = Kind(((True, V), (False, V)), (None,))
REDUCTION = Kind((("avg", V), ("", V), (None, T), (1, T)), ("none", "mean", "sum"))


def choice(bad: str, *good: str) -> Kind:
    return Kind(((bad, V), (None, T), (1, T)), good)


# a string is a padding mode there: an unknown one is a wrong value
# a pooling stride may be None (or []): the kernel size, PyTorch's default
STRIDE = Kind(tuple(b for b in POS_PAIR.bad if b[0] is not None), (None, [], 1, (1, 2)))
CONV_PADDING = Kind(tuple(b for b in NONNEG_PAIR.bad if b[0] != "33") + (("full", V), ("33", V)),
                    NONNEG_PAIR.good + ("same", "valid"))


@dataclass
class Row:
    """A layer's table row: arguments that make a valid layer (``base``), the kind of each
    checked argument, and the arguments left unchecked (``free``) with the reason."""

    base: dict
    checked: dict
    free: dict = field(default_factory=dict)


BN_FREE = {"affine": "a flag taken by truthiness, as PyTorch",
           "track_running_stats": "a flag taken by truthiness, as PyTorch",
           "bias": "a flag taken by truthiness, as PyTorch",
           "device": "accepted for compatibility; every tensor lives on the CPU"}
BN = dict(checked={"num_features": POS, "eps": EPS, "momentum": MOMENTUM, "dtype": DTYPE},
          free=BN_FREE)
INPLACE = {"inplace": "accepted for compatibility; the result is always a new array"}
LOSS_FREE = {"weight": "a tensor, checked against the number of classes at the first call"}

LAYERS = {
    "Identity": Row({}, {}, {"args": "takes and ignores any arguments, as PyTorch's",
                             "kwargs": "takes and ignores any arguments, as PyTorch's"}),
    "Conv2d": Row(dict(in_channels=4, out_channels=4, kernel_size=3),
                  {"in_channels": POS, "out_channels": POS, "kernel_size": POS_PAIR,
                   "stride": POS_PAIR, "padding": CONV_PADDING, "dilation": POS_PAIR,
                   "groups": Kind(POS.bad, (1, 2, 4)), "dtype": DTYPE,
                   "padding_mode": choice("mirror", "zeros", "reflect", "replicate",
                                          "circular")},
                  {"bias": "a flag taken by truthiness, as PyTorch",
                   "device": "accepted for compatibility; every tensor lives on the CPU"}),
    "Linear": Row(dict(in_features=3, out_features=2),
                  {"in_features": POS, "out_features": POS, "dtype": DTYPE},
                  {"bias": "a flag taken by truthiness, as PyTorch",
                   "device": "accepted for compatibility; every tensor lives on the CPU"}),
    "MaxPool2d": Row(dict(kernel_size=3),
                     {"kernel_size": POS_PAIR, "stride": STRIDE, "padding": NONNEG_PAIR,
                      "dilation": POS_PAIR, "ceil_mode": FLAG,
                      "return_indices": FLAG}),
    "AvgPool2d": Row(dict(kernel_size=3),
                     {"kernel_size": POS_PAIR, "stride": STRIDE, "padding": NONNEG_PAIR,
                      "ceil_mode": FLAG, "count_include_pad": FLAG,
                      "divisor_override": DIVISOR}),
    "AdaptiveAvgPool2d": Row(dict(output_size=2), {"output_size": OUTPUT_SIZE}),
    "AdaptiveMaxPool2d": Row(dict(output_size=2), {"output_size": OUTPUT_SIZE,
                                                    "return_indices": FLAG}),
    "Flatten": Row({}, {"start_dim": ANY_INT, "end_dim": ANY_INT}),
    "ReLU": Row({}, {}, INPLACE),
    "LeakyReLU": Row({}, {"negative_slope": NUMBER}, INPLACE),
    "Sigmoid": Row({}, {}),
    "Tanh": Row({}, {}),
    "GELU": Row({}, {"approximate": choice("exact", "none", "tanh")}),
    "Softmax": Row({}, {"dim": OPT_INT}),
    "LogSoftmax": Row({}, {"dim": OPT_INT}),
    "BatchNorm1d": Row(dict(num_features=3), **BN),
    "BatchNorm2d": Row(dict(num_features=3), **BN),
    "SyncBatchNorm": Row(dict(num_features=3), BN["checked"],
                         {**BN_FREE, "process_group": "any object with all_reduce; used "
                                                      "only in training"}),
    "Dropout": Row({}, {"p": PROB}, INPLACE),
    "CrossEntropyLoss": Row({}, {"ignore_index": ANY_INT, "reduction": REDUCTION,
                                 "label_smoothing": PROB, "size_average": DEPRECATED,
                                 "reduce": DEPRECATED}, LOSS_FREE),
    "NLLLoss": Row({}, {"ignore_index": ANY_INT, "reduction": REDUCTION,
                        "size_average": DEPRECATED, "reduce": DEPRECATED}, LOSS_FREE),
    "MSELoss": Row({}, {"reduction": REDUCTION, "size_average": DEPRECATED,
                        "reduce": DEPRECATED}),
    "TTA": Row(dict(model=nn.Identity()),
               {"model": Kind(((3, T), (None, T), (np.zeros(2), T)), (nn.Linear(2, 2),)),
                "mode": choice("rotate", "none", "flip", "flip-translate")}),
}
# containers hold modules and take no sizes; Module is the base class
EXEMPT = {"Module": "the base class", "Sequential": "a container of modules",
          "ModuleList": "a container of modules", "ModuleDict": "a container of modules"}


def public_layers() -> set[str]:
    return {n for n in dir(nn) if not n.startswith("_") and inspect.isclass(getattr(nn, n))
            and issubclass(getattr(nn, n), nn.Module)}


def given(owner: str, arg: str, value) -> str:
    """The regex of a message that names the call, the argument and the value, as
    ``Conv2d(stride=0): ...`` (other arguments may be named beside it)."""
    return rf"^{re.escape(owner)}\((.*, )?{re.escape(f'{arg}={value!r}')}[,)].*: "


def cases(table) -> list:
    out = []
    for owner, args in table:
        for arg, kind in args.items():
            out += [pytest.param(owner, arg, bad, exc, id=f"{owner}-{arg}-{bad!r}")
                    for bad, exc in kind.bad]
    return out


LAYER_BAD = cases((n, r.checked) for n, r in LAYERS.items())
LAYER_GOOD = [pytest.param(n, a, g, id=f"{n}-{a}-{g!r}") for n, r in LAYERS.items()
              for a, k in r.checked.items() for g in k.good]


def test_every_public_layer_has_a_row():
    layers = public_layers()
    missing = layers - set(LAYERS) - set(EXEMPT)
    assert not missing, f"add a row to LAYERS (tests/test_arguments.py) for {sorted(missing)}"
    assert not (set(LAYERS) | set(EXEMPT)) - layers, "rows for layers nn no longer exports"


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_constructor_argument_is_checked_or_free(name):
    params = [p for p in inspect.signature(getattr(nn, name).__init__).parameters
              if p != "self"]
    row = LAYERS[name]
    unlisted = set(params) - set(row.checked) - set(row.free)
    assert not unlisted, f"{name}: list {sorted(unlisted)} as checked or free in its row"
    assert not (set(row.checked) | set(row.free)) - set(params), f"{name}: stale arguments"


@pytest.mark.parametrize("name,arg,bad,exc", LAYER_BAD)
def test_layer_rejects_a_wrong_argument_where_it_is_given(name, arg, bad, exc):
    kwargs = {**LAYERS[name].base, arg: bad}
    with pytest.raises(exc, match=given(name, arg, bad)):
        getattr(nn, name)(**kwargs)


@pytest.mark.parametrize("name,arg,good", LAYER_GOOD)
def test_layer_still_takes_a_valid_argument(name, arg, good):
    layer = getattr(nn, name)(**{**LAYERS[name].base, arg: good})
    assert isinstance(layer, nn.Module)


def test_messages_read_as_the_issue_asks():
    with pytest.raises(ValueError) as e:
        nn.Linear(-1, 3)
    assert str(e.value) == "Linear(in_features=-1): in_features must be a positive integer, got -1"
    with pytest.raises(ValueError) as e:
        nn.Conv2d(3, -2, 3)
    assert str(e.value) == ("Conv2d(out_channels=-2): out_channels must be a positive integer, "
                            "got -2")
    with pytest.raises(TypeError) as e:
        nn.Conv2d(3, 4, (3, 2.5))
    assert str(e.value) == ("Conv2d(kernel_size=(3, 2.5)): kernel_size must be an int or a pair "
                            "of ints, got (3, 2.5)")


def test_subclasses_are_named_in_their_messages():
    class MyBN(nn.BatchNorm2d):
        pass

    with pytest.raises(ValueError, match=r"^MyBN\(num_features=0\): num_features must be"):
        MyBN(0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(groups=3), r"^Conv2d\(in_channels=4, groups=3\): in_channels must be divisible by "
                     r"groups, got 4 \(4 % 3 = 1\)"),
    (dict(in_channels=2, out_channels=3, groups=2),
     r"^Conv2d\(out_channels=3, groups=2\): out_channels must be divisible by groups"),
    (dict(padding="same", stride=2), r"^Conv2d\(padding='same'\): padding='same' is not "
                                     r"supported for strided convolutions"),
])
def test_conv2d_argument_combinations(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.Conv2d(**{"in_channels": 4, "out_channels": 4, "kernel_size": 3, **kwargs})


@pytest.mark.parametrize("cls", [nn.MaxPool2d, nn.AvgPool2d])
def test_pool_padding_over_half_the_kernel_is_refused_at_construction(cls):
    with pytest.raises(ShapeError, match=rf"^{cls.__name__}\(kernel_size=3, padding=2\): "
                                         r"padding 2 should be at most half of the effective "
                                         r"kernel size 3"):
        cls(3, padding=2)
    with pytest.raises(ShapeError, match=r"dilation=2\): padding 3 should be at most half"):
        nn.MaxPool2d(3, padding=(1, 3), dilation=2)
    cls(3, padding=1)  # exactly half (rounded down) is fine


def test_valid_layers_still_run():
    x = cp.ones(2, 4, 6, 6)
    assert nn.Conv2d(4, 8, (3, 1), stride=(2, 1), padding="valid", groups=4)(x).shape == (
        2, 8, 2, 6)
    assert nn.Conv2d(4, 4, 2, padding="same", padding_mode="reflect")(x).shape == x.shape
    assert nn.MaxPool2d((2, 3), stride=[], ceil_mode=True)(x).shape == (2, 4, 3, 2)
    assert nn.AvgPool2d(3, 1, 1, divisor_override=-2)(x).shape == x.shape
    assert nn.AdaptiveMaxPool2d((None, 2))(x).shape == (2, 4, 6, 2)
    assert nn.Linear(np.int64(6), 2, dtype=np.float64)(cp.ones(1, 6).double()).shape == (1, 2)
    assert nn.BatchNorm2d(4, momentum=None, eps=1e-3)(x).shape == x.shape
    for dtype in (np.float64, "float64", np.dtype(np.float64)):  # a dtype object is falsy
        assert nn.BatchNorm1d(3, dtype=dtype).running_var.dtype == np.float64
        assert nn.Conv2d(1, 1, 1, dtype=dtype).weight.dtype == np.float64
        assert nn.Linear(1, 1, dtype=dtype).bias.dtype == np.float64
    assert nn.Flatten(-3, 2)(x).shape == (2, 24, 6)


# ---------------------------------------------------------------- F functions
X4 = cp.ones(1, 2, 6, 6)


def _groups(kw: dict) -> int:
    g = kw.get("groups", 1)
    return g if isinstance(g, int) and g > 0 else 1


def _call(name: str):
    """A valid call of F.<name>, with its arguments open to override."""
    logits, target = cp.zeros(3, 4), cp.tensor([0, 1, 3])
    return {
        "conv2d": lambda **kw: F.conv2d(X4, cp.zeros(2, 2 // _groups(kw), 3, 3), **kw),
        "max_pool2d": lambda **kw: F.max_pool2d(X4, **{"kernel_size": 3, **kw}),
        "avg_pool2d": lambda **kw: F.avg_pool2d(X4, **{"kernel_size": 3, **kw}),
        "adaptive_avg_pool2d": lambda **kw: F.adaptive_avg_pool2d(X4, **kw),
        "adaptive_max_pool2d": lambda **kw: F.adaptive_max_pool2d(
            X4, **{"output_size": 2, **kw}),
        "pad": lambda **kw: F.pad(X4, **{"pad": (1, 1, 1, 1), **kw}),
        "dropout": lambda **kw: F.dropout(X4, **kw),
        "leaky_relu": lambda **kw: F.leaky_relu(X4, **kw),
        "gelu": lambda **kw: F.gelu(X4, **kw),
        "softmax": lambda **kw: F.softmax(X4, **{"dim": 1, **kw}),
        "log_softmax": lambda **kw: F.log_softmax(X4, **{"dim": 1, **kw}),
        "batch_norm": lambda **kw: F.batch_norm(cp.ones(4, 3), None, None, **{
            "training": True, **kw}),
        "sync_batch_norm": lambda **kw: F.sync_batch_norm(cp.ones(4, 3), None, None, **kw),
        "nll_loss": lambda **kw: F.nll_loss(logits, target, **kw),
        "cross_entropy": lambda **kw: F.cross_entropy(logits, target, **kw),
        "mse_loss": lambda **kw: F.mse_loss(logits, logits, **kw),
    }[name]


PAD_PAD = Kind((((2.5, 1), T), ((True, 1), T), ("11", T), (3, T), (None, T), ((1, 1, 1), V),
                ((1,) * 10, V)), ((1, 1), (0, 0, 0, 0, 2, 2), (-1, 1, 0, 0), (1,) * 8, ()))
POOL_PADDING = Kind(NONNEG_PAIR.bad, (0, 1, (0, 1)))
LOSS = {"reduction": REDUCTION, "ignore_index": Kind(ANY_INT.bad, (-100, 0, 3)),
        "size_average": DEPRECATED, "reduce": DEPRECATED}
FUNCTIONS = {
    "conv2d": {"stride": Kind(POS_PAIR.bad, (1, (1, 2), [2, 1])), "padding": CONV_PADDING,
               "dilation": Kind(POS_PAIR.bad, (1, (1, 2), 2)), "groups": Kind(POS.bad, (1, 2))},
    "max_pool2d": {"kernel_size": Kind(POS_PAIR.bad, (2, (2, 3), 3)), "stride": STRIDE,
                   "padding": POOL_PADDING, "dilation": Kind(POS_PAIR.bad, (1, (1, 2))),
                   "ceil_mode": FLAG, "return_indices": FLAG},
    "avg_pool2d": {"kernel_size": Kind(POS_PAIR.bad, (2, (2, 3), 3)), "stride": STRIDE,
                   "padding": POOL_PADDING, "ceil_mode": FLAG, "count_include_pad": FLAG,
                   "divisor_override": DIVISOR},
    "adaptive_avg_pool2d": {"output_size": OUTPUT_SIZE},
    "adaptive_max_pool2d": {"output_size": OUTPUT_SIZE, "return_indices": FLAG},
    "pad": {"pad": PAD_PAD, "mode": choice("mirror", "constant", "reflect", "replicate",
                                           "circular"),
            "value": Kind((("a", T), (True, T)), (None, 0, 2.5))},
    "dropout": {"p": PROB, "training": FLAG},
    "leaky_relu": {"negative_slope": NUMBER},
    "gelu": {"approximate": choice("exact", "none", "tanh")},
    "softmax": {"dim": Kind(OPT_INT.bad, (0, -1, 3)), "dtype": DTYPE},
    "log_softmax": {"dim": Kind(OPT_INT.bad, (0, -1, 3)), "dtype": DTYPE},
    "batch_norm": {"momentum": MOMENTUM, "eps": EPS, "training": Kind(FLAG.bad, (True,))},
    "sync_batch_norm": {"momentum": MOMENTUM, "eps": EPS},
    "nll_loss": LOSS,
    "cross_entropy": {**LOSS, "label_smoothing": PROB},
    "mse_loss": {k: LOSS[k] for k in ("reduction", "size_average", "reduce")},
}
# F functions that take no size, probability or choice to check, and helpers
F_EXEMPT = {
    "linear": "tensors only", "relu": "tensors only ('inplace' is ignored)",
    "sigmoid": "tensors only", "tanh": "tensors only",
    "global_avg_pool2d": "tensors only", "cat": "a Tensor op re-exported", "stack": "likewise",
    "avg_pool_args": "the shared check of AvgPool2d and avg_pool2d (tested through them)",
    "norm_args": "the shared check of BatchNorm and batch_norm (tested through them)",
    "dropout_args": "the shared check of Dropout and dropout (tested through them)",
    "loss_args": "the shared check of the losses (tested through them)",
}
F_BAD = cases(FUNCTIONS.items())
F_GOOD = [pytest.param(n, a, g, id=f"{n}-{a}-{g!r}") for n, args in FUNCTIONS.items()
          for a, k in args.items() for g in k.good]


def test_every_f_function_has_a_row():
    public = {n for n, v in vars(F).items() if inspect.isfunction(v) and not n.startswith("_")
              and v.__module__ == F.__name__ or n in ("cat", "stack")}
    missing = public - set(FUNCTIONS) - set(F_EXEMPT)
    assert not missing, f"add {sorted(missing)} to FUNCTIONS or F_EXEMPT"


@pytest.mark.parametrize("name,arg,bad,exc", F_BAD)
def test_f_function_rejects_a_wrong_argument(name, arg, bad, exc):
    with pytest.raises(exc, match=given(name, arg, bad)):
        _call(name)(**{arg: bad})


@pytest.mark.parametrize("name,arg,good", F_GOOD)
def test_f_function_still_takes_a_valid_argument(name, arg, good):
    out = _call(name)(**{arg: good})
    assert isinstance(out[0] if isinstance(out, tuple) else out, cp.Tensor)


def test_f_batch_norm_eps_is_free_in_evaluation_as_in_torch():
    x, rm, rv = cp.ones(2, 3), np.zeros(3, np.float32), np.ones(3, np.float32)
    assert F.batch_norm(x, rm, rv, training=False, eps=0).shape == (2, 3)
    with pytest.raises(ValueError, match=r"^batch_norm\(eps=0\): eps must be greater than 0"):
        F.batch_norm(x, rm, rv, training=True, eps=0)


# ---------------------------------------------------------------- F.pad of any trailing dims
def test_pad_channels_for_the_resnet_option_a_shortcut():
    x = cp.tensor(np.random.default_rng(0).standard_normal((2, 16, 8, 8)))
    y = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 8, 8))
    assert y.shape == (2, 32, 4, 4)
    np.testing.assert_array_equal(y.numpy()[:, 8:24], x.numpy()[:, :, ::2, ::2])
    assert not y.numpy()[:, :8].any() and not y.numpy()[:, 24:].any()


@pytest.mark.parametrize("shape,pad,mode,match", [
    ((3,), (1, 1), "reflect", r"reflect padding with 2 entries pads the last dim of a 2-D or "
                              r"3-D input .*got a 1-D input"),
    ((2, 2, 3, 4), (1,) * 8, "replicate", r"8 entries pads the last 4 dims"),
    ((1, 2, 3, 4, 5, 6), (1,) * 6, "circular", r"pads the last 3 dims of a 4-D or 5-D input"),
    ((1, 2, 3, 4), (), "reflect", r"with 0 entries"),
    ((2, 0, 3), (1, 1), "reflect", r"needs every dim of the input non-empty but the batch"),
    ((1, 1, 3, 4), (4, 0, 0, 0), "reflect", r"reflect padding \(4, 0, 0, 0\) \(left, right, top, "
                                      r"bottom\) must be smaller than the input size"),
    ((1, 1, 3, 4), (5, 0, 0, 0), "circular", r"circular padding \(5, 0, 0, 0\) .* must not exceed"),
    ((1, 1, 3, 4), (-5, 0), "constant", r"crops more than the input has: padding \(-5, 0\) of "
                                        r"dim 3 \(size 4\)"),
    ((1, 1, 3, 4), (-2, -2, 0, 0), "replicate", r"replicate padding .* leaves no output"),
    ((2, 3), (1, 1, 1, 1, 1, 1), "constant", r"pad must have 2 or 4 entries, or another even "
                                             r"number up to 2 \* input.ndim = 4"),
])
def test_pad_rejects_what_torch_rejects(shape, pad, mode, match):
    with pytest.raises(ValueError, match=match):
        F.pad(cp.zeros(*shape), pad, mode=mode)


def test_pad_value_only_with_constant():
    with pytest.raises(ValueError, match=r"^pad\(value=1\): value is only used by "
                                         r"mode='constant', not 'reflect'"):
        F.pad(X4, (1, 1), mode="reflect", value=1)


PAD_CASES = [  # (shape, pad, mode): any trailing dims in constant mode, 1-3 dims otherwise
    ((5,), (2, 1), "constant"), ((5,), (-2, 3), "constant"), ((3, 4), (1, 2, 0, 1), "constant"),
    ((2, 3, 4, 5), (0, 0, 0, 0, 2, 2), "constant"), ((2, 3, 4, 5), (1, -1, 2, 0, -1, 3),
                                                       "constant"),
    ((2, 3, 4, 5), (1, 1, 1, 1, 1, 1, 1, 1), "constant"), ((2, 3, 4), (-3, -1), "constant"),
    ((2, 3, 4), (), "constant"), ((1, 2, 3, 4, 5), (0, 1, 1, 0, 2, 0, 1, 1, 0, 0), "constant"),
    ((3, 5), (2, 4), "reflect"), ((2, 3, 5), (4, -2), "reflect"), ((2, 3, 5), (1, 2, 2, 1),
                                                                    "reflect"),
    ((2, 3, 4, 5), (1, 2, 3, 0, 2, 1), "reflect"), ((3, 4, 5, 4), (-1, 3, 2, -1, 1, 2),
                                                     "reflect"),
    ((2, 3, 4, 5, 3), (2, 1, 0, 3, 1, 2), "reflect"),
    ((3, 5), (6, 1), "replicate"), ((2, 3, 5), (-4, 6), "replicate"),
    ((2, 3, 4, 5), (1, 2, 0, 5, 3, 1), "replicate"), ((3, 4, 5, 4), (3, -1, 2, 2, -2, 1),
                                                      "replicate"),
    ((3, 5), (5, 2), "circular"), ((2, 3, 5), (-1, 2), "circular"),
    ((2, 3, 4, 5), (2, 1, 4, 0, 1, 2), "circular"), ((2, 3, 4, 5, 3), (1, 1, 1, 1, 1, 1),
                                                     "circular"),
    ((3, 4, 5, 4), (2, -1, -1, 3, 0, 0), "circular"),
]


def _ours(shape, pad, mode, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    xt = cp.tensor(x, requires_grad=True)
    y = F.pad(xt, pad, mode=mode)
    g = rng.standard_normal(y.shape)
    (y * cp.tensor(g)).sum().backward()
    return x, g, y.numpy(), xt.grad.numpy()


@needs_torch
@pytest.mark.parametrize("shape,pad,mode", PAD_CASES, ids=[f"{m}-{s}-{p}" for s, p, m in
                                                           PAD_CASES])
def test_pad_matches_torch_forward_and_gradient(shape, pad, mode):
    import torch

    x, g, out, dx = _ours(shape, pad, mode)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.pad(xt, pad, mode=mode)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,pad,mode", PAD_CASES[::2] + PAD_CASES[1::6],
                         ids=lambda v: str(v))
def test_pad_gradcheck(shape, pad, mode):
    x = cp.tensor(np.random.default_rng(1).standard_normal(shape), requires_grad=True)
    assert gradcheck(lambda t: F.pad(t, pad, mode=mode, value=None), [x])


@needs_torch
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_accepts_and_refuses_what_torch_does_along_one_dim(mode):
    """Every (before, after) from -6 to 6 on sizes 1 to 4: we return what torch returns
    and refuse what torch refuses, except circular pads that wrap past what is left after a
    crop (torch returns uninitialised memory there; we refuse them)."""
    import torch

    x = np.random.default_rng(2).standard_normal((2, 3, 4))
    for size, before, after in itertools.product(range(1, 5), range(-6, 7), range(-6, 7)):
        xs = x[..., :size]
        try:
            want = torch.nn.functional.pad(torch.tensor(xs), (before, after), mode=mode).numpy()
        except (RuntimeError, NotImplementedError):
            want = None
        try:
            got = F.pad(cp.tensor(xs), (before, after), mode=mode).numpy()
        except ValueError:
            got = None
        case = f"size {size}, pad {(before, after)}"
        if got is None and mode == "circular":
            kept = size + min(before, 0) + min(after, 0)
            assert want is None or max(before, after) > kept or kept < 0, case
            continue
        assert (want is None) == (got is None), case
        if want is not None:
            np.testing.assert_array_equal(got, want, err_msg=case)
