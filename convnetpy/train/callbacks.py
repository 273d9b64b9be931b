"""Callbacks: what a run does besides training, as objects with hooks that ``fit`` calls.

Each hook takes the ``RunState``; ``on_step_end`` runs after every optimizer step,
``on_epoch_end`` after each epoch's evaluation (``state.record``). A callback stops the run
with ``state.request_stop(reason)``. ``fit`` builds the ones its config asks for, in the
order of ``default_callbacks``, and appends the user's.

>>> class PrintLoss(Callback):
...     def on_epoch_end(self, state):
...         print(f"epoch {state.epoch}: loss {state.record['loss']:.3f}")
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable

from ..io import checkpoint as ckpt_mod
from ..random import get_rng_state
from . import report
from .health import HealthMonitor
from .state import Callback, RunState
from .tensorboard import TensorBoardLogger

__all__ = ["Callback"]  # defined in state.py, where health/ can import it too


class LRSchedule(Callback):
    """Steps the learning-rate schedule after every optimizer step, until the rate is set
    by hand (``state.scheduled`` False)."""

    def on_step_end(self, state: RunState) -> None:
        if state.scheduled:
            state.scheduler.step()


class DashboardMonitor(Callback):
    """Shows the run live: ``watch(model, meta, val_dataset, summary_text, recipe)`` returns a
    monitor (``convnetpy.dashboard.Monitor``) that sees every step and epoch, and the
    ``health`` monitor's records and warnings as they come; it may pause the run (a pause
    counts in no rate or limit) or set the learning rate (which turns the schedule off from
    that step on, and is logged)."""

    def __init__(self, watch: Callable, health: HealthMonitor | None = None) -> None:
        self.watch, self.monitor, self.health = watch, None, health
        self.shown = (0, 0)  # the health records and warnings the monitor has

    def on_train_begin(self, state: RunState) -> None:
        path = state.run_dir / "summary.txt"
        text = path.read_text() if path.exists() else ""
        self.monitor = self.watch(state.model, state.meta, state.val_dataset, text, state.recipe)

    def on_step_end(self, state: RunState) -> None:
        m = self.monitor
        if m is None:
            return
        m.on_step(state.step, state.loss, state.correct / state.batch_size, state.lr,
                  state.step_seconds, state.batch_size)
        h = self.health
        if h is not None and (len(h.records), len(h.warnings)) != self.shown:
            self.shown = (len(h.records), len(h.warnings))
            first = h.records[0] if h.records else {}
            m.on_health(h.records[-1] if h.records else None, list(h.warnings),
                        first.get("init"))
        state.exclude(m.wait_if_paused())
        new_lr = m.take_lr()
        if new_lr is not None:
            for group in state.optimizer.param_groups:
                group["lr"] = new_lr
            state.scheduled = False
            state.log(f"step {state.step}: learning rate set to {new_lr:g} from the dashboard; "
                      "the schedule is off from here")

    def on_epoch_end(self, state: RunState) -> None:
        if self.monitor is not None:
            self.monitor.on_epoch(state.record)

    def on_train_end(self, state: RunState) -> None:
        if self.monitor is not None:
            self.monitor.finish(state.status)


class Progress(Callback):
    """A progress bar per epoch on a terminal (report.ProgressBar)."""

    def __init__(self) -> None:
        self.bar = None

    def on_epoch_begin(self, state: RunState) -> None:
        cfg = state.config
        self.bar = report.ProgressBar(state.steps_per_epoch, f"epoch {state.epoch + 1}/"
                                      f"{cfg.epochs}", cfg.progress,
                                      initial=state.batch)  # a resumed epoch goes on

    def on_step_end(self, state: RunState) -> None:
        self.bar.update(state.batch, state.loss)

    def on_epoch_end(self, state: RunState) -> None:
        self.close()

    def on_train_end(self, state: RunState) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StepLog(Callback):
    """One line per step, ``step N loss X`` (machine-readable)."""

    def on_step_end(self, state: RunState) -> None:
        state.log(f"step {state.step} loss {state.loss:.6f}")


class Interrupt(Callback):
    """Ctrl-C finishes the step in flight, saves a checkpoint and ends the run cleanly; a
    second Ctrl-C quits at once. Only in the main thread, and only when no one else
    handles SIGINT."""

    def __init__(self) -> None:
        self.flag, self.previous = False, None

    def on_train_begin(self, state: RunState) -> None:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            def on_sigint(signum, frame):
                if self.flag:
                    raise KeyboardInterrupt
                self.flag = True
                state.log("Ctrl-C: finishing this step and saving a checkpoint (Ctrl-C again "
                          "to quit at once)")

            self.previous = signal.signal(signal.SIGINT, on_sigint)

    def on_step_end(self, state: RunState) -> None:
        if self.flag:
            state.request_stop("interrupted")

    def on_train_end(self, state: RunState) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
        if state.status == "interrupted":
            state.log(f"interrupted at step {state.step}: resume with  convnetpy train "
                      f"--resume {state.run_dir}")


class RunLimits(Callback):
    """Ends the run after ``max_steps`` steps or ``time_limit`` minutes (0: no limit)."""

    def __init__(self, max_steps: int = 0, time_limit: float = 0.0) -> None:
        self.max_steps, self.time_limit = max_steps, time_limit

    def on_step_end(self, state: RunState) -> None:
        if self.max_steps and state.step >= self.max_steps:
            state.request_stop("max_steps")
        elif self.time_limit and time.perf_counter() - state.started >= 60 * self.time_limit:
            state.request_stop("time_limit")


class Checkpointing(Callback):
    """Saves the run into ``run_dir/checkpoints``: ``step-N`` every ``every`` steps (0: at
    each epoch's end only) and when the run stops mid-epoch for any reason but a failure,
    keeping the newest two, and ``best`` whenever the validation accuracy improves. A
    checkpoint holds all that an exact resume needs: data order and augmentation derive
    from (seed, epoch, batch) and dropout is reseeded from them each step, so the counters
    plus the generator state suffice."""

    def __init__(self, every: int = 0, keep: int = 2) -> None:
        self.every, self.keep, self.saved_step = every, keep, None

    def on_train_begin(self, state: RunState) -> None:
        ckpt_mod.clean_stale(state.run_dir / "checkpoints")

    def on_step_end(self, state: RunState) -> None:
        if self.every and state.step % self.every == 0 and state.batch < state.steps_per_epoch:
            self.save(state, f"step-{state.step:08d}")  # an epoch's end saves its own

    def on_epoch_end(self, state: RunState) -> None:
        if state.improved:
            self.save(state, "best")
        self.save(state, f"step-{state.step:08d}")

    def on_train_end(self, state: RunState) -> None:
        # a stop mid-epoch (a limit, Ctrl-C, any callback's request); a failed run keeps
        # only the checkpoints it had, which hold finite numbers
        if (state.status != "failed" and 0 < state.batch < state.steps_per_epoch
                and self.saved_step != state.step):
            self.save(state, f"step-{state.step:08d}")

    def save(self, state: RunState, name: str):
        seed = state.config.seed
        meta = dict(state.meta, config=state.recipe, epoch=state.epoch, batch=state.batch,
                    step=state.step, history=state.history, best_val_acc=state.best_val_acc,
                    sums=state.sums, rng={"seed": seed, "order": f"default_rng([{seed}, epoch])",
                                          "generator": get_rng_state()})
        folder = state.run_dir / "checkpoints"
        path = ckpt_mod.save_checkpoint(folder, name, state.model, state.optimizer,
                                        state.scheduler, meta)
        if name.startswith("step-"):
            ckpt_mod.prune(folder, keep=self.keep)
            self.saved_step = state.step
        return path


class EpochLog(Callback):
    """Per epoch: the fixed-width line to ``state.log``, a line of ``metrics.jsonl`` and the
    curves PNG in the run folder."""

    def on_epoch_end(self, state: RunState) -> None:
        state.log(report.epoch_line(state.record, state.config.epochs))
        report.append_metrics(state.run_dir / "metrics.jsonl", state.record)
        report.plot_curves(state.history, state.run_dir / "curves.png")


class EarlyStopping(Callback):
    """Ends the run after ``patience`` epochs in a row without a better validation
    accuracy (counted from the start of this process)."""

    def __init__(self, patience: int) -> None:
        self.patience, self.bad_epochs = patience, 0

    def on_epoch_end(self, state: RunState) -> None:
        self.bad_epochs = 0 if state.improved else self.bad_epochs + 1
        if self.bad_epochs >= self.patience:
            state.request_stop("early_stopped")


def default_callbacks(cfg, watch: Callable | None = None,
                      writer: bool = True) -> list[Callback]:
    """The callbacks a TrainConfig asks for, in the order they run: the schedule first (a
    step's rate), then the dashboard (which may pause or set the rate), the health records
    (``health_every``: health.py), the TensorBoard event files (``tensorboard``:
    tensorboard.py), the progress bar and step log, what may stop the run
    (Ctrl-C before the limits: its status wins), the checkpoints, the epoch log and early
    stopping. Without ``writer`` (the ranks but 0 of a data-parallel run) only those that
    steer the run: no output, no files."""
    if not writer:
        cbs = [LRSchedule(), Interrupt(), RunLimits(cfg.max_steps, cfg.time_limit)]
        return cbs + ([EarlyStopping(cfg.early_stopping)] if cfg.early_stopping else [])
    cbs: list[Callback] = [LRSchedule()]
    health = HealthMonitor(cfg.health_every) if cfg.health_every else None
    if watch is not None:
        cbs.append(DashboardMonitor(watch, health))
    if health is not None:  # after what sets the rate: it records the next step's
        cbs.append(health)
    if cfg.tensorboard:  # after the health monitor: it writes this step's record
        cbs.append(TensorBoardLogger(cfg.tensorboard, health))
    cbs.append(Progress())
    if cfg.log_steps:
        cbs.append(StepLog())
    cbs += [Interrupt(), RunLimits(cfg.max_steps, cfg.time_limit),
            Checkpointing(cfg.checkpoint_every), EpochLog()]
    if cfg.early_stopping:
        cbs.append(EarlyStopping(cfg.early_stopping))
    return cbs
