"""Checkpoints: atomic folders, round trips of model/optimizer/scheduler state, and clear
rejection of corrupted or mismatched files."""

import json

import numpy as np
import pytest

import convnetpy as cp
from convnetpy import models, nn, optim
from convnetpy.io import checkpoint as ck


def trained(seed=0):
    cp.manual_seed(seed)
    net = models.get("resnet20")
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.MultiStepLR(opt, [2, 4], 0.1)
    x = cp.tensor(np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype("f"))
    for _ in range(3):
        opt.zero_grad()
        cp.functional.cross_entropy(net(x), cp.tensor([0, 1, 2, 3])).backward()
        opt.step()
        sched.step()
    return net, opt, sched


def test_round_trip_is_bitwise(tmp_path):
    net, opt, sched = trained()
    path = ck.save_checkpoint(tmp_path, "step-00000003", net, opt, sched, {"step": 3})
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "weights.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000003"]  # no temporaries left
    c = ck.load_checkpoint(tmp_path)
    assert c.meta["step"] == 3 and c.meta["versions"]["numpy"] == np.__version__
    net2, opt2, sched2 = trained(seed=1)
    ck.restore(c, net2, opt2, sched2)
    for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    for p, q in zip(net.parameters(), net2.parameters()):
        np.testing.assert_array_equal(opt.state[p]["momentum_buffer"],
                                      opt2.state[q]["momentum_buffer"])
    assert sched2.get_last_lr() == sched.get_last_lr() and sched2.last_epoch == 3
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_prune_keeps_newest_two_and_stale_temporaries_are_cleaned(tmp_path):
    net = nn.Linear(2, 2)
    for s in (1, 2, 3):
        ck.save_checkpoint(tmp_path, f"step-{s:08d}", net)
        ck.prune(tmp_path)
    assert [p.name for p in ck.step_checkpoints(tmp_path)] == ["step-00000002", "step-00000003"]
    (tmp_path / ".tmp-step-00000004-123").mkdir()
    (tmp_path / ".tmp-step-00000004-123" / "weights.safetensors").write_bytes(b"half")
    assert ck.resolve(tmp_path).name == "step-00000003"
    assert [p.name for p in ck.clean_stale(tmp_path)] == [".tmp-step-00000004-123"]


def test_non_finite_values_are_never_written(tmp_path):
    net = nn.Linear(2, 2)
    net.weight.data[0, 0] = np.nan
    with pytest.raises(ValueError, match="model.weight holds non-finite values"):
        ck.save_checkpoint(tmp_path, "step-00000001", net)
    assert not ck.step_checkpoints(tmp_path)


def test_corrupted_or_truncated_weights_are_rejected(tmp_path):
    net = nn.Linear(3, 2)
    path = ck.save_checkpoint(tmp_path, "step-00000001", net)
    w = path / "weights.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[:-4])
    with pytest.raises(ValueError, match="content hash does not match"):
        ck.load_checkpoint(path)
    w.write_bytes(data[:-4])
    meta = json.loads((path / "meta.json").read_text())
    import hashlib
    meta["sha256"] = hashlib.sha256(data[:-4]).hexdigest()  # a consistent but truncated file
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="truncated file|trailing|needs"):
        ck.load_checkpoint(path)
    (path / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable checkpoint metadata"):
        ck.load_checkpoint(path)


def test_mismatched_model_is_named(tmp_path):
    ck.save_checkpoint(tmp_path, "best", nn.Sequential(nn.Linear(3, 2)))
    c = ck.load_checkpoint(tmp_path / "best")
    with pytest.raises(nn.StateDictError, match=r"size mismatch for 0.weight: copying a param "
                                                r"with shape \(2, 3\)"):
        ck.restore(c, nn.Sequential(nn.Linear(4, 2)))
    with pytest.raises(nn.StateDictError, match='Missing key\\(s\\) in state_dict: "1.weight"'):
        ck.restore(c, nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)))


def test_resolve_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        ck.resolve(tmp_path)
