"""The public API's shape: docstrings with Shape sections, F signatures equal to
torch.nn.functional's, optimizer and scheduler state that round-trips."""

import inspect

import numpy as np
import pytest
from conftest import needs_torch

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import nn, optim
from convnetpy.optim import lr_scheduler

LAYERS = [getattr(nn, n) for n in nn.__all__ if inspect.isclass(getattr(nn, n))
          and issubclass(getattr(nn, n), nn.Module)
          and n not in ("Module", "Sequential", "ModuleList", "ModuleDict")]


@pytest.mark.parametrize("cls", LAYERS, ids=[c.__name__ for c in LAYERS])
def test_every_layer_documents_its_shape_with_an_example(cls):
    doc = cls.__doc__ or ""
    assert "Shape:" in doc and ">>>" in doc, f"{cls.__name__} needs a Shape: section and doctest"


F_NAMES = ["conv2d", "pad", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
           "adaptive_max_pool2d", "linear", "relu", "leaky_relu", "sigmoid", "tanh", "gelu",
           "softmax",
           "log_softmax", "batch_norm", "dropout", "nll_loss", "cross_entropy", "mse_loss"]


def torch_signature(name):
    """torch.nn.functional's signature: its own, the *_with_indices variant behind a
    boolean dispatch, or the one written on the first line of a builtin's docstring."""
    import ast

    import torch.nn.functional as TF

    fn = getattr(TF, name)
    try:
        sig = inspect.signature(fn)
        if list(sig.parameters) == ["args", "kwargs"]:
            sig = inspect.signature(getattr(TF, name + "_with_indices"))
        return {k: (None if v.default is inspect.Parameter.empty else v.default)
                for k, v in sig.parameters.items() if not k.startswith("_")}
    except ValueError:
        head = fn.__doc__.strip().splitlines()[0].split("->")[0].strip()
        args = ast.parse(f"def f{head[len(name):]}: pass").body[0].args
        defaults = [None] * (len(args.args) - len(args.defaults)) + [
            ast.literal_eval(d) for d in args.defaults]
        return {a.arg: d for a, d in zip(args.args, defaults)}


@needs_torch
@pytest.mark.parametrize("name", F_NAMES)
def test_functional_signature_matches_torch(name):
    ours = {k: (None if v.default is inspect.Parameter.empty else v.default)
            for k, v in inspect.signature(getattr(F, name)).parameters.items()}
    theirs = torch_signature(name)
    assert list(ours) == list(theirs), f"{name}: {list(ours)} != torch's {list(theirs)}"
    assert ours == theirs, f"{name}: defaults {ours} != torch's {theirs}"


OURS_ONLY = {"TTA"}  # convnetpy's own wrappers, with no torch.nn counterpart
TORCH_LAYERS = [c for c in LAYERS if c.__name__ not in OURS_ONLY]


@needs_torch
@pytest.mark.parametrize("cls", TORCH_LAYERS, ids=[c.__name__ for c in TORCH_LAYERS])
def test_layer_constructor_matches_torch(cls):
    import torch

    ours = inspect.signature(cls.__init__).parameters
    theirs = inspect.signature(getattr(torch.nn, cls.__name__).__init__).parameters
    for pname, p in theirs.items():
        if pname in ("self", "args", "kwargs"):
            continue
        assert pname in ours, f"{cls.__name__} lacks torch's argument {pname}"
        if p.default is not inspect.Parameter.empty:
            assert ours[pname].default == p.default, f"{cls.__name__}({pname})"


def _train(sched_factory, steps, resume_at=None):
    p = nn.Parameter(np.ones(3))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    sched = sched_factory(opt)
    lrs = []
    for step in range(steps):
        if step == resume_at:
            o_sd, s_sd = opt.state_dict(), sched.state_dict()
            p2 = nn.Parameter(p.numpy().copy())
            opt = optim.SGD([p2], lr=0.5, momentum=0.0)
            sched = sched_factory(opt)
            opt.load_state_dict(o_sd)
            sched.load_state_dict(s_sd)
            p = p2
        p.grad = cp.tensor(np.full(3, 0.5 + step))
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    return lrs, p.numpy()


@pytest.mark.parametrize("factory", [
    lambda o: lr_scheduler.StepLR(o, 2, 0.5),
    lambda o: lr_scheduler.CosineAnnealingLR(o, 10),
    lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=12),
    lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.LinearLR(o, 0.1, total_iters=3),
                                            lr_scheduler.ExponentialLR(o, 0.9)], [4]),
], ids=["step", "cosine", "onecycle", "sequential"])
def test_optimizer_and_scheduler_state_round_trip(factory):
    straight = _train(factory, 11)
    resumed = _train(factory, 11, resume_at=5)
    assert straight[0] == resumed[0]
    np.testing.assert_array_equal(straight[1], resumed[1])


def test_onecycle_with_a_warm_up_of_no_length_starts_at_max_lr():
    # pct_start * total_steps == 1: PyTorch divides by the phase's zero length; we start at
    # the phase's end (max_lr) and anneal as usual
    p = nn.Parameter(np.zeros(3, np.float32))
    opt = optim.SGD([p], lr=0.5, momentum=0.9)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=4, pct_start=0.25)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(3):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[0] == 1.0 and lrs[1] < 1.0 and lrs == sorted(lrs, reverse=True)
    assert lrs[-1] == pytest.approx(1.0 / 25 / 1e4)
