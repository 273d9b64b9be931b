"""The training loop: ``train_one_epoch``, ``evaluate`` and ``fit``, which sets a run up
from its config (or resumes one exactly from a checkpoint) and composes the callbacks
(callbacks.py) that checkpoint, log, schedule, stop and show it.

What each step does is fixed here: reseed from (seed, epoch, batch), forward, a finite
loss, backward, finite gradients, optional clipping, the optimizer step, finite weights.
Launched as several processes (``mpiexec -n N``), each trains on its share of the data
and what is shown is summed over all of them (parallel.py). Everything else is a
callback, and a user's own plugs in the same way:

>>> from convnetpy.train import Callback, TrainConfig, fit
>>> class Losses(Callback):
...     def __init__(self):
...         self.seen = []
...     def on_step_end(self, state):
...         self.seen.append(state.loss)
>>> import tempfile
>>> cfg = TrainConfig(model="convnetjs_cifar10", data="synthetic:64", epochs=1, batch_size=32,
...                   progress=False, out=tempfile.mkdtemp())
>>> losses = Losses()
>>> result = fit(config=cfg, callbacks=[losses], log=lambda line: None)
>>> result["status"], len(losses.seen)
('completed', 1)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import functional as F
from ..analysis import summary
from ..autograd import no_grad, quiet_floating_point
from ..data import DataLoader, DistributedSampler
from ..data.dataset import ArrayDataset
from ..io import checkpoint as ckpt_mod
from ..io.files import write_atomic
from ..nn.tta import TTA
from ..nn.utils import clip_grad_norm_
from ..random import manual_seed
from ..runtime import compiled_loops
from ..tensor import Tensor
from .callbacks import Callback, default_callbacks
from .config import TrainConfig
from .parallel import RankSync, fail_everywhere, reduce_sums, shard, world_for, wrap
from .recipe import (
    make_optimizer,
    make_scheduler,
    new_run_dir,
    prepare_data,
    prepare_model,
    transforms_for,
)
from .recipe import train_loader as make_train_loader
from .state import RunState, new_sums

# what a non-finite loss, gradient or weight error suggests
HINT = ("try a lower lr, grad_clip, or check the data; train --detect-anomaly names the first "
        "op that produced it")


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, gradient or weight)."""


def evaluate(model, loader: DataLoader, num_classes: int, world=None,
             probabilities: bool = False) -> dict[str, Any]:
    """Mean cross-entropy, accuracy, per-class accuracy and the confusion matrix
    (rows: true class, columns: predicted); with a ``world`` of several ranks, each
    evaluates its loader and the sums are added over all of them. ``probabilities``: also
    each image's softmax output ("probs", (N, classes), in the loader's order, this rank's)."""
    model.eval()
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    loss_sum, n, probs = 0.0, 0, []
    with no_grad():
        for x, y in loader.batches(0):
            out = model(Tensor(x))
            loss_sum += F.cross_entropy(out, Tensor(y), reduction="sum").item()
            pred = out.numpy().argmax(axis=1)
            np.add.at(conf, (y, pred), 1)
            n += len(y)
            if probabilities:
                probs.append(F.softmax(out, dim=1).numpy())
    if world is not None and world.size > 1:
        conf = world.all_reduce(conf)
        loss_sum, n = reduce_sums(world, loss_sum, n)
        n = int(n)
    per_class = np.diag(conf) / np.maximum(conf.sum(axis=1), 1)
    out = {"loss": loss_sum / max(n, 1), "acc": float(np.trace(conf)) / max(n, 1),
           "per_class": per_class.tolist(), "confusion": conf.tolist(), "n": n}
    if probabilities:
        out["probs"] = np.concatenate(probs) if probs else np.zeros((0, num_classes))
    return out


def _step_seed(seed: int, epoch: int, batch: int, rank: int | None = None) -> int:
    key = [seed, epoch, batch] + ([] if rank is None else [rank])
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def _check_finite(model, step: int, what: str) -> None:
    for name, p in model.named_parameters():
        if what == "gradient" and p.grad is None:
            continue  # a frozen parameter
        arr = p.grad.numpy() if what == "gradient" else p.numpy()
        if not np.all(np.isfinite(arr)):
            raise TrainingError(f"step {step}: the {what} of {name} holds NaN or Inf; training "
                                f"stopped ({HINT})")


def _each(callbacks: Sequence[Callback], hook: str, state: RunState) -> None:
    for cb in callbacks:
        getattr(cb, hook)(state)


def train_one_epoch(state: RunState, callbacks: Sequence[Callback] = ()) -> None:
    """Train from ``state.batch`` to the end of epoch ``state.epoch``, or until a callback
    requests a stop; ``on_step_end`` runs after every step."""
    cfg, model, opt, world = state.config, state.model, state.optimizer, state.world
    model.train()
    rank = world.rank if world.size > 1 else None  # each rank its own dropout
    for b, (x, y) in enumerate(state.train_loader.batches(state.epoch, state.batch),
                               start=state.batch):
        t_step = time.perf_counter()
        manual_seed(_step_seed(cfg.seed, state.epoch, b, rank))
        out = (state.train_model or model)(Tensor(x))
        loss = F.cross_entropy(out, Tensor(y), label_smoothing=cfg.label_smoothing)
        lv = loss.item()
        if not np.isfinite(lv):
            raise TrainingError(f"step {state.step}: the loss is {lv} (epoch {state.epoch + 1}, "
                                f"batch {b}); training stopped ({HINT})")
        opt.zero_grad()
        loss.backward()
        _check_finite(model, state.step, "gradient")
        if cfg.grad_clip:
            clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        _check_finite(model, state.step, "weight")
        state.step, state.batch = state.step + 1, b + 1
        correct = int((out.numpy().argmax(axis=1) == y).sum())
        loss_sum, seen = lv * len(y), len(y)
        if world.size > 1:  # the step as one run: summed over the ranks
            loss_sum, correct, seen = reduce_sums(world, loss_sum, correct, seen)
            lv = loss_sum / seen
        state.loss, state.batch_size, state.correct = lv, int(seen), int(correct)
        state.step_seconds = time.perf_counter() - t_step
        state.sums["loss"] += loss_sum
        state.sums["correct"] += state.correct
        state.sums["seen"] += state.batch_size
        _each(callbacks, "on_step_end", state)
        if state.stop_reason is not None:
            break


def _finish_epoch(state: RunState) -> None:
    """Evaluate, record the epoch in ``history`` and move the counters to the next. The
    last epoch is evaluated with the config's test-time augmentation too (``val_acc_tta``,
    its time counted in ``elapsed``); ``val_acc`` is always without it."""
    cfg, classes = state.config, state.dataset.num_classes
    val = evaluate(state.model, state.val_loader, classes, state.world)
    tta = {}
    if cfg.tta != "none" and state.epoch + 1 == cfg.epochs:
        aug = evaluate(TTA(state.model, cfg.tta), state.val_loader, classes, state.world)
        tta = {"tta": cfg.tta, "val_loss_tta": aug["loss"], "val_acc_tta": aug["acc"]}
    sums = state.sums
    rec = {"epoch": state.epoch + 1, "step": state.step,
           "loss": sums["loss"] / max(sums["seen"], 1),
           "acc": sums["correct"] / max(sums["seen"], 1), "val_loss": val["loss"],
           "val_acc": val["acc"], "time": sums["time"],
           "img_per_s": sums["seen"] / max(sums["time"], 1e-9),
           "lr": state.lr, **tta, "elapsed": time.perf_counter() - state.started}
    state.history.append(rec)
    state.record = rec
    state.improved = val["acc"] > state.best_val_acc
    if state.improved:
        state.best_val_acc = val["acc"]
    state.epoch, state.batch, state.sums = state.epoch + 1, 0, new_sums()


# settings that steer a run without changing its result; a resumed run may change them
RUN_CONTROL = {"max_steps", "time_limit", "checkpoint_every", "progress", "log_steps",
               "distributed", "health_every", "tensorboard"}


def fit(model=None, data: ArrayDataset | str | None = None, config: TrainConfig | None = None,
        callbacks: Sequence[Callback] = (), *, resume: str | Path | None = None,
        overrides: dict[str, Any] | None = None, log: Callable[[str], None] = print,
        watch: Callable | None = None, dataset: ArrayDataset | None = None) -> dict[str, Any]:
    """Train ``model`` (default: the config's zoo model) on ``data`` (an ArrayDataset or a
    ``--data`` spec; default: the config's) with ``config`` (default: TrainConfig()), and
    the config's callbacks followed by ``callbacks``; returns a dict with the run folder,
    status, history, best and last validation accuracy, the model and the config.

    ``resume`` (a run folder or checkpoint) continues a run exactly with its own recipe;
    ``overrides`` may change only the run-control settings (``RUN_CONTROL``: max_steps,
    time_limit, checkpoint_every, progress, log_steps, distributed, health_every,
    tensorboard).
    ``watch`` shows the run live (see ``callbacks.DashboardMonitor``). ``fit(cfg)`` (a
    TrainConfig first) and ``dataset=`` still work as before.
    """
    if isinstance(model, TrainConfig):  # fit(cfg, ...), the older call
        model, config = None, model
    data = dataset if data is None else data
    ck = None
    if resume is not None:
        ck = ckpt_mod.load_checkpoint(resume)
        bad = sorted(set(overrides or {}) - RUN_CONTROL)
        if bad:
            raise ValueError(f"a resumed run keeps its recipe; only {sorted(RUN_CONTROL)} may "
                             f"change, not {', '.join(bad)}")
        config = TrainConfig.from_checkpoint(ck.meta, str(ck.path)).replace(**(overrides or {}))
    cfg = config or TrainConfig()
    world = world_for(cfg)
    try:
        with quiet_floating_point():  # a diverging run is reported by its checks, not NumPy
            return _train(model, data, cfg, ck, callbacks, log, watch, world)
    except BaseException as e:
        if world.size > 1:  # the other ranks would wait for this one forever
            fail_everywhere(world, e)
        raise


def _train(model, data, cfg: TrainConfig, ck, callbacks: Sequence[Callback],
           log: Callable[[str], None], watch: Callable | None, world) -> dict[str, Any]:
    writer = world.rank == 0  # only rank 0 writes files, logs and serves the dashboard
    if not writer:
        log, watch = (lambda line: None), None
    run_data = prepare_data(cfg, data)
    ds, train_ds, val_ds, mean, std = run_data
    given = {}  # what the recipe cannot rebuild: a model object, a dataset object
    if model is not None:
        given["model"] = f"{type(model).__module__}.{type(model).__qualname__}"
    if isinstance(data, ArrayDataset):
        given["data"] = ds.name
    if ck is not None:
        first = ck.meta.get("given", {})
        if model is None and "model" in first:
            raise ValueError(f"{ck.path}: this run trained a model object "
                             f"({first['model']}), not a zoo model; resume it from Python: "
                             f"fit(model, data, resume=...)")
        given = {**first, **given}
    model = prepare_model(cfg, run_data, model)
    sampler = None
    if world.size > 1:  # this rank's share of every epoch (the batch size is per rank)
        sampler = DistributedSampler(train_ds, world.size, world.rank, seed=cfg.seed)
    train_loader = make_train_loader(cfg, run_data, sampler)
    val_loader = DataLoader(shard(val_ds, world), max(cfg.batch_size, 256), shuffle=False,
                            transform=transforms_for(cfg, ds.image_shape, mean, std, False))
    train_model = wrap(model, cfg, world)
    opt = make_optimizer(cfg, model, cfg.epochs * len(train_loader))
    sched = make_scheduler(cfg, opt, cfg.epochs * len(train_loader))
    meta = {"classes": ds.classes, "mean": mean, "std": std,
            "input_shape": list(ds.image_shape), "num_classes": ds.num_classes,
            "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS",
                                                       "OPENBLAS_NUM_THREADS")}
            | {"cpu_count": os.cpu_count()},
            # numba loops or NumPy: the last bits of a resumed run depend on it
            "loops": compiled_loops(), "given": given, "world_size": world.size}
    if ck is not None:
        ckpt_mod.restore(ck, model, opt, sched)
        run_dir = ck.path.parent.parent
    else:
        run_dir = None
        if writer:
            run_dir = new_run_dir(cfg)
            write_atomic(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=1))
            (run_dir / "summary.txt").write_text(
                summary(model, (cfg.batch_size,) + ds.image_shape,
                        optimizer="momentum").to_text() + "\n")
        run_dir = Path(world.broadcast_object(str(run_dir)))
    # the checkpoint keeps the recipe; run-control settings of this process are not saved
    recipe = dict(ck.meta["config"]) if ck is not None else cfg.to_dict()
    state = RunState(cfg, model, opt, sched, ds, val_ds, train_loader, val_loader, run_dir,
                     meta, recipe, log, world=world, train_model=train_model)
    if ck is not None:
        m = ck.meta
        state.epoch, state.batch, state.step = m["epoch"], m["batch"], m["step"]
        state.history, state.best_val_acc, state.sums = m["history"], m["best_val_acc"], m["sums"]
        was = m.get("world_size", 1)
        if was != world.size:  # the same images seen: batch b of W ranks is b*W/W' of W'
            state.batch = state.batch * was // world.size
            # the schedule, planned in steps of the old size, is planned again and brought
            # to the same point of the run
            state.scheduler = make_scheduler(cfg, opt, cfg.epochs * len(train_loader))
            for _ in range(state.epoch * len(train_loader) + state.batch):
                state.scheduler.step()
            log(f"the run trained on {was} process(es), now {world.size}: the epoch goes on "
                f"from batch {state.batch} (not bit-identical to a run that kept its size)")
        log(f"resumed {ck.path} at step {state.step} (epoch {state.epoch + 1}, batch "
            f"{state.batch})")
    if world.size > 1:
        log(f"data-parallel on {world.size} processes: batch {cfg.batch_size} per process, "
            f"{cfg.batch_size * world.size} in all")
    cbs = default_callbacks(cfg, watch, writer) + list(callbacks)
    if world.size > 1:
        cbs.append(RankSync(world))  # last: sees every stop request of this step
    try:
        _each(cbs, "on_train_begin", state)
        state.started = time.perf_counter()
        while state.epoch < cfg.epochs and state.stop_reason is None:
            _each(cbs, "on_epoch_begin", state)
            state.epoch_started = time.perf_counter()
            train_one_epoch(state, cbs)
            state.sums["time"] += time.perf_counter() - state.epoch_started
            if state.batch < state.steps_per_epoch:
                break  # stopped mid-epoch (its checkpoint is written)
            if cfg.lookahead_ramp and state.epoch + 1 == cfg.epochs:
                opt.use_slow()  # the run ends on the averaged weights
            _finish_epoch(state)
            _each(cbs, "on_epoch_end", state)
        state.status = state.stop_reason or "completed"
    except BaseException:
        state.status = "failed"
        raise
    finally:
        _each(cbs, "on_train_end", state)
    history = state.history
    return {"run_dir": str(run_dir), "status": state.status, "step": state.step,
            "epoch": state.epoch, "history": history, "best_val_acc": state.best_val_acc,
            "val_acc": history[-1]["val_acc"] if history else None,
            "val_acc_tta": history[-1].get("val_acc_tta") if history else None,
            "model": model, "config": cfg, "world_size": world.size, "rank": world.rank}
