"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural
Networks", section 3.3): train for a few hundred steps while the learning rate grows
exponentially from tiny to huge, record the loss at each, and read off a good rate from
where the loss falls fastest. The model and optimizer are put back exactly as they were.

``lr_find`` sweeps a model and optimizer you already have; ``lr_find_config`` sets a run up
from its TrainConfig (the model, optimizer, augmented and normalised training split of
``fit``) and sweeps that; ``convnetpy lr-find`` is the command over it.

>>> import numpy as np
>>> from convnetpy import nn, optim
>>> net = nn.Linear(4, 3)
>>> x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
>>> y = np.arange(16) % 3
>>> res = lr_find(net, optim.SGD(net.parameters(), lr=0.1), [(x, y)], steps=50)
>>> len(res.lrs), f"{res.lrs[0]:.0e}", res.reason
(50, '1e-07', 'completed')
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .. import functional as F
from ..data import DataLoader
from ..io.files import write_atomic
from ..nn.utils import clip_grad_norm_
from ..random import get_rng_state, set_rng_state
from ..tensor import Tensor
from .config import TrainConfig
from .recipe import make_optimizer, prepare_data, prepare_model, train_loader

RULE = ("the steepest fall of the smoothed loss against log10(lr), searched from the start "
        "of the sweep up to the lowest smoothed loss")


@dataclass
class LRFindResult:
    """What a range test found. ``lrs`` are the first parameter group's rates (the others
    kept their ratio to it); ``losses[i]`` is the loss of the batch stepped with ``lrs[i]``
    (computed before that step), ``smoothed`` its bias-corrected moving average.

    ``suggested_lr`` follows ``RULE`` (None when the loss never fell); ``min_loss_lr`` is
    the rate at the lowest smoothed loss, whose tenth is the other common choice.
    ``reason`` is "completed", or why the sweep stopped early (divergence, a non-finite
    loss, the batches ran out)."""
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggested_lr: float | None
    min_loss_lr: float | None
    stopped_early: bool
    reason: str
    rule: str = RULE
    config: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def schedule(start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """The swept rates: ``start_lr * (end_lr / start_lr) ** (i / (steps - 1))``.

    >>> " ".join(f"{v:.0e}" for v in schedule(1e-6, 1e3, 10))
    '1e-06 1e-05 1e-04 1e-03 1e-02 1e-01 1e+00 1e+01 1e+02 1e+03'
    """
    check_range(start_lr, end_lr, steps)
    return start_lr * (end_lr / start_lr) ** (np.arange(steps) / (steps - 1))


def check_range(start_lr: float, end_lr: float, steps: int,
                names: tuple[str, str, str] = ("lr_find: start_lr", "end_lr", "steps")) -> None:
    """Raise a ValueError naming the setting when the sweep cannot run (``names``: how the
    caller calls the three, e.g. the command line's options)."""
    start, end, count = names
    if not (np.isfinite(start_lr) and start_lr > 0):
        raise ValueError(f"{start} must be a positive number, got {start_lr:g}")
    if not (np.isfinite(end_lr) and end_lr > start_lr):
        raise ValueError(f"{end} ({end_lr:g}) must be larger than {start.split()[-1]} "
                         f"({start_lr:g})")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 10:
        raise ValueError(f"{count} must be an integer of at least 10 (a few hundred gives a "
                         f"readable curve), got {steps!r}")


def suggest(lrs, smoothed, skip_start: int | None = None) -> tuple[float | None, float | None]:
    """(``suggested_lr``, ``min_loss_lr``) of a smoothed loss curve: the rate where the loss
    falls fastest per decade (``RULE``, fastai's "steep") and the rate of the lowest loss.

    Why the steepest fall: it reads the curve instead of assuming that the useful range
    ends a decade below the minimum (the "lowest / 10" habit), and it lies below the
    minimum, where training is still stable. It is a good *peak* rate for the one-cycle
    schedule (the default): on LeNet-5 it gives 0.06-0.14 on the digits and MNIST, where
    the presets' peak of 0.1 is. For a constant rate ``min_loss_lr / 10`` is the safer
    start. The search begins after the first ``skip_start`` points (default a tenth: the
    moving average of a handful of losses is noisy) and stops at the minimum, so the
    blow-up after it is never chosen; None when the loss never fell.

    >>> lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    >>> suggest(lrs, [2.3, 2.2, 1.2, 1.0, 5.0])
    (0.01, 0.1)
    """
    lrs, sm = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    if len(sm) < 3:
        return None, None
    skip = len(sm) // 10 if skip_start is None else skip_start
    lowest = int(np.argmin(sm))
    if lowest <= skip:
        return None, float(lrs[lowest])
    slope = np.gradient(sm, np.log10(lrs))  # central differences, one-sided at the ends
    steepest = skip + int(np.argmin(slope[skip:lowest + 1]))
    if slope[steepest] >= 0:
        return None, float(lrs[lowest])
    return float(lrs[steepest]), float(lrs[lowest])


def _batches(source) -> Iterator:
    """Batches on and on: a DataLoader epoch after epoch (each its own order), a list
    again from its start, a one-shot iterator once."""
    if isinstance(source, DataLoader):
        epoch = 0
        while len(source):
            yield from source.batches(epoch)
            epoch += 1
        return
    if iter(source) is source:
        yield from source
        return
    while True:
        empty = True
        for item in source:
            empty = False
            yield item
        if empty:
            return


def _put_back(t: Tensor, data: np.ndarray) -> None:
    # in place where it fits: whatever holds the array (a view, a workspace) sees it too
    if t.data.shape == data.shape and t.data.dtype == data.dtype:
        np.copyto(t.data, data)
    else:
        t.data = data


def _as_tensor(v) -> Tensor:
    return v if isinstance(v, Tensor) else Tensor(v)


def lr_find(model, optimizer, batches: DataLoader | Iterable, loss_fn: Callable | None = None,
            start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 200,
            smooth: float = 0.98, diverge: float = 4.0, grad_clip: float = 0.0,
            log: Callable[[str], None] | None = None) -> LRFindResult:
    """Step ``optimizer`` once per rate of ``schedule(start_lr, end_lr, steps)`` on
    consecutive ``batches`` ((x, y) pairs; a DataLoader or a list is cycled), in training
    mode, and return the losses with a suggested rate (``suggest``).

    Every parameter group gets the swept rate times its ratio to the first group's rate
    (a batch-norm-bias group at twice the lr stays at twice). ``loss_fn(output, target)``
    defaults to cross-entropy; ``grad_clip`` clips the gradient norm as ``fit`` does. The
    loss is smoothed as fastai does: ``avg = smooth * avg + (1 - smooth) * loss``, shown
    as ``avg / (1 - smooth ** (i + 1))``; the sweep stops once that exceeds ``diverge``
    times its lowest value (0: never) or the loss is not finite.

    Afterwards the parameters and buffers (batch-norm statistics), their gradients, each
    module's train/eval mode, the optimizer's state_dict (moments, step counts, rates) and
    the global random generator (dropout) are exactly as they were, even on an error.
    """
    check_range(start_lr, end_lr, steps)
    if isinstance(batches, tuple) and len(batches) == 2 and \
            isinstance(batches[0], (np.ndarray, Tensor)):
        raise TypeError("lr_find: batches is one (x, y) pair; pass a list of batches, "
                        "[(x, y)], or a DataLoader")
    if not 0 <= smooth < 1:
        raise ValueError(f"lr_find: smooth must be in [0, 1) (0: no smoothing), got {smooth}")
    if diverge < 0:
        raise ValueError(f"lr_find: diverge must be >= 0 (0: never stop), got {diverge}")
    base = [g["lr"] for g in optimizer.param_groups]
    if base[0] <= 0:
        raise ValueError("lr_find: the optimizer's first parameter group has lr 0, so the "
                         "other groups' ratio to it is undefined; give it a positive lr")
    ratios = [b / base[0] for b in base]
    loss_fn = loss_fn or F.cross_entropy
    tensors = list({id(t): t for t in [*model.parameters(), *model.buffers()]}.values())
    kept = [t.data.copy() for t in tensors]
    grads = [(p, p.grad, None if p.grad is None else p.grad.data.copy())
             for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    opt_state, rng = optimizer.state_dict(), get_rng_state()
    lrs, losses, smoothed = [], [], []
    avg, best, reason = 0.0, np.inf, "completed"
    feed = _batches(batches)
    try:
        model.train()
        for i, lr in enumerate(schedule(start_lr, end_lr, steps)):
            item = next(feed, None)
            if item is None:
                reason = f"the batches ran out after {i} steps"
                break
            for g, r in zip(optimizer.param_groups, ratios):
                g["lr"] = float(lr) * r
            x, y = item
            loss = loss_fn(model(_as_tensor(x)), _as_tensor(y))
            lv = loss.item()
            if not np.isfinite(lv):
                reason = f"the loss was {lv} at lr {lr:.3g} (step {i})"
                break
            optimizer.zero_grad()
            loss.backward()
            if grad_clip:
                clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            avg = smooth * avg + (1 - smooth) * lv
            sm = avg / (1 - smooth ** (i + 1))
            lrs.append(float(lr))
            losses.append(lv)
            smoothed.append(sm)
            if log is not None and (i + 1) % max(steps // 10, 1) == 0:
                log(f"lr-find: step {i + 1}/{steps} lr {lr:.2e} loss {lv:.4f} "
                    f"(smoothed {sm:.4f})")
            if diverge and sm > diverge * best:
                reason = (f"diverged: the smoothed loss {sm:.4g} passed {diverge:g} x its "
                          f"lowest {best:.4g} at lr {lr:.3g} (step {i})")
                break
            best = min(best, sm)
    finally:
        feed.close()
        for t, data in zip(tensors, kept):
            _put_back(t, data)
        for p, g, data in grads:
            p.grad = g
            if g is not None:
                _put_back(g, data)
        for m, training in modes:
            object.__setattr__(m, "training", training)  # as Module.train sets it
        optimizer.load_state_dict(opt_state)
        set_rng_state(rng)
    suggested, lowest = suggest(lrs, smoothed)
    return LRFindResult(lrs, losses, smoothed, suggested, lowest,
                        stopped_early=reason != "completed", reason=reason)


def lr_find_config(config: TrainConfig, steps: int = 200, start_lr: float = 1e-7,
                   end_lr: float = 10.0, smooth: float = 0.98, diverge: float = 4.0,
                   out: str | Path | None = None,
                   log: Callable[[str], None] = print) -> LRFindResult:
    """The range test of the run ``config`` describes: its model (seeded and initialised as
    ``fit`` builds it), optimizer (with its parameter groups; without Lookahead, whose
    pull-backs are no part of the learning rate's effect), loss (label smoothing),
    gradient clipping and training split (shuffled, augmented and normalised by the
    split's own statistics, batch ``batch_size``). ``config.lr`` only sets the groups'
    ratios. Writes lr_find.json and lr_find.png into the folder ``out`` when given
    (``write``), nothing otherwise; the global random generator is left as it was.
    """
    check_range(start_lr, end_lr, steps)
    if config.distributed == "mpi":
        raise ValueError("lr-find runs in one process; set distributed to auto or none")
    rng = get_rng_state()
    try:
        data = prepare_data(config)  # as fit sets a run up, in one process
        model = prepare_model(config, data)
        loader = train_loader(config, data)
        # the inner optimizer alone: Lookahead's pull-back every k steps would blur the curve
        opt = make_optimizer(replace(config, lookahead_k=0, lookahead_ramp=False), model)
        log(f"lr-find: {config.model} on {data.dataset.name}, {len(data.train)} training "
            f"images, batch {config.batch_size}, {config.optimizer}, lr {start_lr:.1e} to "
            f"{end_lr:.1e} in {steps} steps")

        def loss_fn(out, y):
            return F.cross_entropy(out, y, label_smoothing=config.label_smoothing)

        result = lr_find(model, opt, loader, loss_fn, start_lr, end_lr, steps, smooth,
                         diverge, config.grad_clip, log)
    finally:
        set_rng_state(rng)
    result.config = config.to_dict()
    if out is not None:
        write(result, out)
    return result


def new_output_dir(parent: str | Path) -> Path:
    """A fresh ``lr-find-<time>`` folder under ``parent`` (-2, -3... if taken)."""
    base = Path(parent)
    stamp = "lr-find-" + time.strftime("%Y%m%d-%H%M%S")
    path, k = base / stamp, 2
    while path.exists():
        path, k = base / f"{stamp}-{k}", k + 1
    path.mkdir(parents=True)
    return path


def write(result: LRFindResult, folder: str | Path) -> list[str]:
    """Write ``lr_find.json`` (the whole result) and ``lr_find.png`` (the loss against the
    rate, smoothed, with the suggestion) into ``folder``, each atomically; the paths are
    returned and kept in ``result.files``."""
    from ..viz import plots

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    js, png = folder / "lr_find.json", folder / "lr_find.png"
    result.files = [str(js), str(png)] if result.lrs else [str(js)]  # no finite loss: no plot
    write_atomic(js, json.dumps(result.to_dict(), indent=1))
    if result.lrs:
        fig = plots.lr_find_figure(result.lrs, result.losses, suggested_lr=result.suggested_lr,
                                   smoothed=result.smoothed)
        plots.save_figure(fig, png)
    return result.files
