"""The state of a run that the loop and its callbacks share (``RunState``), and what a
callback is (``Callback``: the hooks the loop calls with it; callbacks.py has the ones a
config switches on)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..data import DataLoader
from ..data.dataset import ArrayDataset
from ..distributed import World
from .config import TrainConfig


def new_sums() -> dict[str, float]:
    """The running totals of an epoch: loss (summed over images), correct, seen, seconds."""
    return {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0}


@dataclass
class RunState:
    """One run: what it trains, where it writes, and where it is.

    The counters (``epoch``, ``batch`` within it, ``step``), ``history``, ``best_val_acc``
    and ``sums`` are what a checkpoint keeps for an exact resume. After each step ``loss``,
    ``correct`` and ``batch_size`` describe it; after each epoch ``record`` holds its
    metrics and ``improved`` says whether it beat the best validation accuracy so far.
    A callback ends the run with ``request_stop(reason)``, which becomes the run's status.
    """
    config: TrainConfig
    model: Any
    optimizer: Any
    scheduler: Any
    dataset: ArrayDataset  # the whole dataset (classes, image shape)
    val_dataset: ArrayDataset
    train_loader: DataLoader
    val_loader: DataLoader
    run_dir: Path
    meta: dict[str, Any]  # what every checkpoint records besides the recipe and counters
    recipe: dict[str, Any]  # the config as the checkpoints keep it (run control left out)
    log: Callable[[str], None] = print
    world: Any = field(default_factory=World)  # the processes of the run (parallel.py)
    train_model: Any = None  # what the step calls: the model, or its data-parallel wrapper
    epoch: int = 0
    batch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_acc: float = -1.0
    sums: dict[str, float] = field(default_factory=new_sums)
    status: str = "running"
    stop_reason: str | None = None
    scheduled: bool = True  # False once the learning rate was set by hand (the dashboard)
    loss: float = float("nan")
    correct: int = 0
    batch_size: int = 0
    step_seconds: float = 0.0
    record: dict[str, Any] | None = None
    improved: bool = False
    started: float = field(default_factory=time.perf_counter)
    epoch_started: float = field(default_factory=time.perf_counter)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def request_stop(self, reason: str) -> None:
        """End the run after this step (or epoch); the first reason given is its status."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` (a pause) out of the run's and the epoch's clocks."""
        self.started += seconds
        self.epoch_started += seconds


class Callback:
    """Base class: every hook does nothing until overridden."""

    def on_train_begin(self, state: RunState) -> None: ...

    def on_epoch_begin(self, state: RunState) -> None: ...

    def on_step_end(self, state: RunState) -> None: ...

    def on_epoch_end(self, state: RunState) -> None: ...

    def on_train_end(self, state: RunState) -> None:
        """Called last, also when the run failed (``state.status == "failed"``)."""
