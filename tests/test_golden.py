"""Replay the PyTorch golden fixtures (made by tests/fixtures/make_golden.py with torch
2.13.0) without torch: functional ops forward and backward, optimizer trajectories and LR
schedules."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_ref

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import optim
from convnetpy.optim import lr_scheduler

HERE = Path(__file__).parent / "fixtures"


def _load(name):
    with np.load(HERE / name, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


OPS = _load("golden_ops.npz")
OPT = _load("golden_optim.npz")
N_OPS = len({k.split("/")[0] for k in OPS})


@pytest.mark.parametrize("i", range(N_OPS), ids=[str(OPS[f"{i}/op"]) + f"-{i}"
                                                 for i in range(N_OPS)])
def test_functional_op_matches_torch(i):
    op, kwargs = str(OPS[f"{i}/op"]), json.loads(str(OPS[f"{i}/kwargs"]))
    names = json.loads(str(OPS[f"{i}/names"]))
    args = []
    for name in names:
        arr = OPS[f"{i}/in/{name}"].copy()
        grad = f"{i}/grad/{name}" in OPS
        args.append(arr if name.startswith("running_") else cp.tensor(arr, requires_grad=grad))
    y = getattr(F, op)(*args, **kwargs)
    assert_ref(y.numpy(), OPS[f"{i}/out"], what=f"{op} forward")
    (y * cp.tensor(OPS[f"{i}/proj"])).sum().backward()
    for name, a in zip(names, args):
        if f"{i}/grad/{name}" in OPS:
            assert_ref(a.grad.numpy(), OPS[f"{i}/grad/{name}"], what=f"{op} grad {name}")
        if f"{i}/after/{name}" in OPS:
            assert_ref(a, OPS[f"{i}/after/{name}"], what=f"{op} {name} after")


N_OPT = len({k.split("/")[0] for k in OPT if k.startswith("opt")})
N_SCHED = len({k.split("/")[0] for k in OPT if k.startswith("sched")})


@pytest.mark.parametrize("i", range(N_OPT))
def test_optimizer_trajectory_matches_torch(i):
    name, kw = str(OPT[f"opt{i}/name"]), json.loads(str(OPT[f"opt{i}/kwargs"]))
    p = cp.nn.Parameter(OPT[f"opt{i}/p0"].copy())
    opt = getattr(optim, name)([p], **kw)
    for t, g in enumerate(OPT[f"opt{i}/grads"]):
        p.grad = cp.tensor(g)
        opt.step()
        assert_ref(p.numpy(), OPT[f"opt{i}/traj"][t], tol=1e-12, what=f"{name} step {t}")


@pytest.mark.parametrize("i", range(N_SCHED))
def test_lr_schedule_matches_torch(i):
    name, kw = str(OPT[f"sched{i}/name"]), json.loads(str(OPT[f"sched{i}/kwargs"]))
    p = cp.nn.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    sched = getattr(lr_scheduler, name)(opt, **kw)
    lrs, moms = [], []
    for _ in range(len(OPT[f"sched{i}/lrs"])):
        lrs.append(sched.get_last_lr()[0])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, OPT[f"sched{i}/lrs"], rtol=1e-13, atol=0)
    np.testing.assert_allclose(moms, OPT[f"sched{i}/moms"], rtol=1e-13, atol=0)
