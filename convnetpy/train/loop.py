"""fit() and evaluate(): the training loop, with exact resume, NaN/Inf guards, Ctrl-C
handling, checkpoints and the run folder."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import checkpoint as ckpt_mod
from .. import functional as F
from .. import models, optim
from ..analysis import check, summary
from ..autograd import no_grad
from ..data import DataLoader, get_dataset
from ..data import transforms as T
from ..data.dataset import ArrayDataset
from ..nn.utils import clip_grad_norm_
from ..random import get_rng_state, manual_seed
from ..runtime import compiled_loops
from ..tensor import Tensor
from .config import TrainConfig
from .report import ProgressBar, append_metrics, epoch_line, plot_curves


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, gradient or weight)."""


def channel_stats(ds: ArrayDataset) -> tuple[list[float], list[float]]:
    x = ds.images.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 2, 3))
    std = x.std(axis=(0, 2, 3))
    return mean.tolist(), np.maximum(std, 1e-3).tolist()


def build_model(cfg: TrainConfig, num_classes: int, in_channels: int):
    return models.get(cfg.model, num_classes=num_classes, in_channels=in_channels,
                      **cfg.model_kwargs)


def make_optimizer(cfg: TrainConfig, params):
    if cfg.optimizer == "sgd":
        return optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                         nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: TrainConfig, opt, total: int):
    s = optim.lr_scheduler
    if cfg.schedule == "onecycle":
        return s.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=cfg.pct_start,
                            cycle_momentum=cfg.optimizer in ("sgd", "rmsprop")
                            and cfg.momentum > 0)
    if cfg.schedule == "cosine":
        return s.CosineAnnealingLR(opt, T_max=total)
    if cfg.schedule == "multistep":
        return s.MultiStepLR(opt, [int(m * total) for m in cfg.milestones], cfg.gamma)
    if cfg.schedule == "step":
        return s.StepLR(opt, max(total // 3, 1), cfg.gamma)
    return s.StepLR(opt, step_size=total + 1, gamma=1.0)  # constant


def transforms_for(cfg: TrainConfig, shape, mean, std, train: bool):
    steps: list = []
    if train:
        if "crop" in cfg.augment:
            steps.append(T.RandomCrop(shape[1], padding=cfg.crop_padding))
        if "flip" in cfg.augment:
            steps.append(T.RandomHorizontalFlip())
        if "cutout" in cfg.augment:
            steps.append(T.Cutout(cfg.cutout))
    steps.append(T.Normalize(mean, std))
    return T.Compose(steps)


def evaluate(model, loader: DataLoader, num_classes: int) -> dict[str, Any]:
    """Mean cross-entropy, accuracy, per-class accuracy and the confusion matrix
    (rows: true class, columns: predicted)."""
    model.eval()
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    loss_sum, n = 0.0, 0
    with no_grad():
        for x, y in loader.batches(0):
            out = model(Tensor(x))
            loss_sum += F.cross_entropy(out, Tensor(y), reduction="sum").item()
            pred = out.numpy().argmax(axis=1)
            np.add.at(conf, (y, pred), 1)
            n += len(y)
    per_class = np.diag(conf) / np.maximum(conf.sum(axis=1), 1)
    return {"loss": loss_sum / max(n, 1), "acc": float(np.trace(conf)) / max(n, 1),
            "per_class": per_class.tolist(), "confusion": conf.tolist(), "n": n}


def _step_seed(seed: int, epoch: int, batch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, batch]).generate_state(1)[0])


def _check_finite(model, step: int, what: str) -> None:
    for name, p in model.named_parameters():
        if what == "gradient" and p.grad is None:
            continue  # a frozen parameter
        arr = p.grad.numpy() if what == "gradient" else p.numpy()
        if not np.all(np.isfinite(arr)):
            raise TrainingError(f"step {step}: the {what} of {name} holds NaN or Inf; training "
                                "stopped (try a lower lr, grad_clip, or check the data)")


def _new_run_dir(cfg: TrainConfig) -> Path:
    base = Path(cfg.out)
    rid = cfg.run_id or time.strftime("%Y%m%d-%H%M%S") + f"-{cfg.model}"
    path, k = base / rid, 2
    while path.exists() and not cfg.run_id:
        path, k = base / f"{rid}-{k}", k + 1
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


# settings that steer a run without changing its result; a resumed run may change them
RUN_CONTROL = {"max_steps", "time_limit", "checkpoint_every", "progress", "log_steps"}


def fit(cfg: TrainConfig | None = None, resume: str | Path | None = None,
        dataset: ArrayDataset | None = None, log=print,
        overrides: dict[str, Any] | None = None, watch=None) -> dict[str, Any]:
    """Train; returns a dict with the run folder, status, history and best val accuracy.

    ``resume`` (a run folder or checkpoint) continues a run exactly with its own config;
    ``overrides`` may change only the run-control settings (max_steps, time_limit,
    checkpoint_every, progress, log_steps). ``watch(model, meta, val_ds, summary_text,
    config)`` may return a monitor (``convnetpy.dashboard.Monitor``) that sees every step
    and epoch and may pause training or set the learning rate (which turns the schedule
    off from that step on, and is logged)."""
    ck = None
    if resume is not None:
        ck = ckpt_mod.load_checkpoint(resume)
        bad = sorted(set(overrides or {}) - RUN_CONTROL)
        if bad:
            raise ValueError(f"a resumed run keeps its recipe; only {sorted(RUN_CONTROL)} may "
                             f"change, not {', '.join(bad)}")
        cfg = TrainConfig.from_dict({**ck.meta["config"], **(overrides or {})})
        run_dir = ck.path.parent.parent
    cfg = cfg or TrainConfig()
    ds = dataset if dataset is not None else get_dataset(cfg.data, cfg.image_size)
    train_ds, val_ds = ds.split(cfg.val_fraction, cfg.seed)
    mean, std = channel_stats(train_ds)
    manual_seed(cfg.seed)
    model = build_model(cfg, ds.num_classes, ds.image_shape[0])
    shape = (1,) + ds.image_shape
    check(model, shape)  # a shape mistake is reported before the first step
    train_loader = DataLoader(train_ds, cfg.batch_size, shuffle=True, seed=cfg.seed,
                              drop_last=len(train_ds) > cfg.batch_size,
                              transform=transforms_for(cfg, ds.image_shape, mean, std, True))
    val_loader = DataLoader(val_ds, max(cfg.batch_size, 256), shuffle=False,
                            transform=transforms_for(cfg, ds.image_shape, mean, std, False))
    steps_per_epoch = len(train_loader)
    opt = make_optimizer(cfg, model.parameters())
    sched = make_scheduler(cfg, opt, cfg.epochs * steps_per_epoch)
    epoch, batch, step, history, best = 0, 0, 0, [], -1.0
    sums = {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0}
    if ck is not None:
        ckpt_mod.restore(ck, model, opt, sched)
        m = ck.meta
        epoch, batch, step = m["epoch"], m["batch"], m["step"]
        history, best, sums = m["history"], m["best_val_acc"], m["sums"]
        log(f"resumed {ck.path} at step {step} (epoch {epoch + 1}, batch {batch})")
    else:
        run_dir = _new_run_dir(cfg)
        _write_json(run_dir / "config.json", cfg.to_dict())
        (run_dir / "summary.txt").write_text(
            summary(model, (cfg.batch_size,) + ds.image_shape, optimizer="momentum").to_text()
            + "\n")
    ckpt_dir = run_dir / "checkpoints"
    ckpt_mod.clean_stale(ckpt_dir)
    meta_base = {"classes": ds.classes, "mean": mean, "std": std,
                 "input_shape": list(ds.image_shape), "num_classes": ds.num_classes,
                 "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS",
                                                            "OPENBLAS_NUM_THREADS")}
                 | {"cpu_count": os.cpu_count()},
                 # numba loops or NumPy: the last bits of a resumed run depend on it
                 "loops": compiled_loops()}

    def save(name: str) -> Path:
        # data order and augmentation derive from (seed, epoch, batch) and dropout is reseeded
        # from them each step, so these plus the generator state are all a resume needs
        meta = dict(meta_base, config=config_record, epoch=epoch, batch=batch, step=step,
                    history=history, best_val_acc=best, sums=sums,
                    rng={"seed": cfg.seed, "order": f"default_rng([{cfg.seed}, epoch])",
                         "generator": get_rng_state()})
        path = ckpt_mod.save_checkpoint(ckpt_dir, name, model, opt, sched, meta)
        if name.startswith("step-"):
            ckpt_mod.prune(ckpt_dir, keep=2)
        return path

    # the checkpoint keeps the recipe; run-control settings of this process are not saved
    config_record = dict(ck.meta["config"]) if ck is not None else cfg.to_dict()
    monitor = None
    if watch is not None:
        text = (run_dir / "summary.txt").read_text() if (run_dir / "summary.txt").exists() \
            else ""
        monitor = watch(model, meta_base, val_ds, text, config_record)
    scheduled = True  # False once the dashboard set the learning rate by hand
    stop = {"flag": False}
    prev_handler = None
    # Ctrl-C finishes the step in flight, saves a checkpoint and returns cleanly
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        def on_sigint(signum, frame):
            if stop["flag"]:  # a second Ctrl-C quits at once
                raise KeyboardInterrupt
            stop["flag"] = True
            log("Ctrl-C: finishing this step and saving a checkpoint (Ctrl-C again to quit "
                "at once)")

        prev_handler = signal.signal(signal.SIGINT, on_sigint)
    status, t_start, bad_epochs = "completed", time.perf_counter(), 0
    try:
        while epoch < cfg.epochs:
            model.train()
            bar = ProgressBar(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress)
            t0 = time.perf_counter()
            for b, (x, y) in enumerate(train_loader.batches(epoch, batch), start=batch):
                t_step = time.perf_counter()
                manual_seed(_step_seed(cfg.seed, epoch, b))
                out = model(Tensor(x))
                loss = F.cross_entropy(out, Tensor(y), label_smoothing=cfg.label_smoothing)
                lv = loss.item()
                if not np.isfinite(lv):
                    raise TrainingError(f"step {step}: the loss is {lv} (epoch {epoch + 1}, "
                                        f"batch {b}); training stopped (try a lower lr, "
                                        "grad_clip, or check the data)")
                opt.zero_grad()
                loss.backward()
                _check_finite(model, step, "gradient")
                if cfg.grad_clip:
                    clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                _check_finite(model, step, "weight")
                if scheduled:
                    sched.step()
                step, batch = step + 1, b + 1
                correct = int((out.numpy().argmax(axis=1) == y).sum())
                sums["loss"] += lv * len(y)
                sums["correct"] += correct
                sums["seen"] += len(y)
                if monitor is not None:
                    monitor.on_step(step, lv, correct / len(y), opt.param_groups[0]["lr"],
                                    time.perf_counter() - t_step, len(y))
                    paused = monitor.wait_if_paused()  # a pause counts in no rate or limit
                    t0, t_start = t0 + paused, t_start + paused
                    new_lr = monitor.take_lr()
                    if new_lr is not None:
                        for group in opt.param_groups:
                            group["lr"] = new_lr
                        scheduled = False
                        log(f"step {step}: learning rate set to {new_lr:g} from the "
                            "dashboard; the schedule is off from here")
                bar.update(batch, lv)
                if cfg.log_steps:
                    log(f"step {step} loss {lv:.6f}")
                limit = (cfg.max_steps and step >= cfg.max_steps) or (
                    cfg.time_limit and time.perf_counter() - t_start >= 60 * cfg.time_limit)
                if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or limit or \
                        stop["flag"]:
                    if batch < steps_per_epoch:  # the epoch end saves its own
                        save(f"step-{step:08d}")
                if limit or stop["flag"]:
                    status = "interrupted" if stop["flag"] else (
                        "max_steps" if cfg.max_steps and step >= cfg.max_steps else "time_limit")
                    break
            bar.close()
            sums["time"] += time.perf_counter() - t0
            if batch < steps_per_epoch:
                break  # stopped mid-epoch (its checkpoint is written)
            val = evaluate(model, val_loader, ds.num_classes)
            rec = {"epoch": epoch + 1, "step": step, "loss": sums["loss"] / max(sums["seen"], 1),
                   "acc": sums["correct"] / max(sums["seen"], 1), "val_loss": val["loss"],
                   "val_acc": val["acc"], "time": sums["time"],
                   "img_per_s": sums["seen"] / max(sums["time"], 1e-9),
                   "lr": opt.param_groups[0]["lr"], "elapsed": time.perf_counter() - t_start}
            history.append(rec)
            if monitor is not None:
                monitor.on_epoch(rec)
            log(epoch_line(rec, cfg.epochs))
            append_metrics(run_dir / "metrics.jsonl", rec)
            epoch, batch = epoch + 1, 0
            sums = {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0}
            if val["acc"] > best:
                best, bad_epochs = val["acc"], 0
                save("best")
            else:
                bad_epochs += 1
            save(f"step-{step:08d}")
            plot_curves(history, run_dir / "curves.png")
            if status != "completed":
                break
            if cfg.early_stopping and bad_epochs >= cfg.early_stopping:
                status = "early_stopped"
                break
    finally:
        if prev_handler is not None:
            signal.signal(signal.SIGINT, prev_handler)
        if monitor is not None:
            monitor.finish(status if sys.exc_info()[0] is None else "failed")
    if status == "interrupted":
        log(f"interrupted at step {step}: resume with  convnetpy train --resume {run_dir}")
    return {"run_dir": str(run_dir), "status": status, "step": step, "epoch": epoch,
            "history": history, "best_val_acc": best,
            "val_acc": history[-1]["val_acc"] if history else None,
            "model": model, "config": cfg}
