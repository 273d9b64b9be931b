"""TrainConfig: every setting of a training run, validated, plus the named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from ..io.checkpoint_meta import CheckpointError, require_training
from ..models.airbench import PRESETS as AIRBENCH_PRESETS
from ..nn.tta import MODES as TTA_PASSES

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "onecycle", "cosine", "multistep", "step", "triangle")
AUGMENTS = ("crop", "translate", "flip", "altflip", "cutout")
INITS = ("default", "whiten")
TTA_MODES = tuple(TTA_PASSES)
DISTRIBUTED = ("auto", "none", "mpi")


@dataclass
class TrainConfig:
    model: str = "lenet5"          # a zoo name (convnetpy.models.list_models())
    # digits | mnist[:PATH] | cifar10[:PATH] | folder:PATH | synthetic[:N]
    data: str = "digits"
    epochs: int = 8                # passes over the training split
    batch_size: int = 64           # images per step
    optimizer: str = "sgd"         # sgd | adam | adamw | rmsprop
    lr: float = 0.05               # peak learning rate (the one-cycle maximum)
    momentum: float = 0.9          # SGD/RMSprop momentum
    nesterov: bool = True          # Nesterov momentum (SGD)
    weight_decay: float = 5e-4     # L2 penalty (decoupled for adamw)
    # constant | onecycle | cosine | multistep | step | triangle
    schedule: str = "onecycle"
    pct_start: float = 0.25        # one-cycle / triangle: the fraction of the run spent warming up
    lr_start_factor: float = 0.2   # triangle: the first lr is this times lr (then up, then down)
    lr_end_factor: float = 0.0     # triangle: the last lr is this times lr
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # multistep: fractions
    gamma: float = 0.1             # multistep/step decay factor
    label_smoothing: float = 0.0   # cross-entropy label smoothing
    bn_bias_lr_factor: float = 1.0  # batch norm biases: lr times this, same lr * weight decay
    init: str = "default"          # default | whiten (the first conv, from the data; frozen)
    tta: str = "none"              # the final validation: none | flip | flip-translate
    grad_clip: float = 0.0         # clip the global gradient norm to this (0: off)
    # optim.Lookahead around the optimizer: every lookahead_k steps the slow weights move
    # lookahead_alpha of the way to the fast ones (0: off); with lookahead_ramp the share
    # falls from 1 to lookahead_alpha as the cube of the run's progress (airbench's
    # optim.cubic_alpha), and the model ends on the slow weights
    lookahead_k: int = 0
    lookahead_alpha: float = 0.5
    lookahead_ramp: bool = False
    # any of crop, translate, flip (random), altflip (alternating: data.AlternatingFlip), cutout
    augment: list[str] = field(default_factory=list)
    crop_padding: int = 4          # crop: zero padding; translate: reflected (the largest shift)
    cutout: int = 8                # side of the cutout square
    val_fraction: float = 0.1      # share of the training data held out for validation
    seed: int = 0                  # everything random derives from it
    early_stopping: int = 0        # stop after this many epochs without a better val acc (0: off)
    checkpoint_every: int = 0      # steps between checkpoints (0: at the end of each epoch)
    max_steps: int = 0             # stop (with a checkpoint) after this many steps (0: no limit)
    time_limit: float = 0.0        # stop (with a checkpoint) after this many minutes (0: none)
    image_size: int = 32           # image-folder images are resized to this
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra zoo-factory arguments
    out: str = "runs"              # parent folder of the run folders
    run_id: str = ""               # the run folder's name (default: time stamp + model)
    progress: bool = True          # a progress bar on a terminal
    log_steps: bool = False        # print one line per step (machine-readable, for tests)
    # steps between training-health records in run_dir/health.jsonl (update/param ratios,
    # gradient norms, dead ReLUs, histograms, warnings; train/health.py), and step 1; 0: off.
    # 50 costs under 1% of the step time (benchmarks/health_overhead.py)
    health_every: int = 50
    # several processes: auto (MPI when mpiexec started more than one) | none | mpi
    distributed: str = "auto"
    sync_batchnorm: bool = False   # several processes: batch norm statistics over all of them
    # a folder: TensorBoard event files of the run in FOLDER/<run id> (tensorboardX, the
    # tensorboard extra; train/tensorboard.py); "": off
    tensorboard: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"TrainConfig: {msg}")

        for f in fields(self):
            v = getattr(self, f.name)
            t = f.type if isinstance(f.type, str) else f.type.__name__
            if t == "int":
                need(isinstance(v, int) and not isinstance(v, bool), f"{f.name} must be an "
                     f"integer, got {v!r}")
            elif t == "float":
                need(isinstance(v, (int, float)) and not isinstance(v, bool),
                     f"{f.name} must be a number, got {v!r}")
            elif t == "bool":
                need(isinstance(v, bool), f"{f.name} must be true or false, got {v!r}")
            elif t == "str":
                need(isinstance(v, str), f"{f.name} must be a string, got {v!r}")
        need(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        need(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        need(self.lr > 0, f"lr must be positive, got {self.lr}")
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got "
             f"{self.optimizer!r}")
        need(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got "
             f"{self.schedule!r}")
        need(0 < self.pct_start < 1, f"pct_start must be in (0, 1), got {self.pct_start}")
        need(0 < self.lr_start_factor <= 1, "lr_start_factor must be in (0, 1], got "
             f"{self.lr_start_factor}")
        need(0 <= self.lr_end_factor <= 1, "lr_end_factor must be in [0, 1], got "
             f"{self.lr_end_factor}")
        need(0 < self.lookahead_alpha <= 1, "lookahead_alpha must be in (0, 1], got "
             f"{self.lookahead_alpha}")
        need(not self.lookahead_ramp or self.lookahead_k > 0, "lookahead_ramp ramps "
             "Lookahead's share: set lookahead_k (e.g. 5) to use Lookahead")
        need(self.bn_bias_lr_factor > 0, "bn_bias_lr_factor must be positive, got "
             f"{self.bn_bias_lr_factor}")
        need(self.init in INITS, f"init must be one of {INITS}, got {self.init!r}")
        need(self.tta in TTA_MODES, f"tta must be one of {TTA_MODES}, got {self.tta!r}")
        need(isinstance(self.milestones, list)
             and all(isinstance(m, (int, float)) and not isinstance(m, bool) and 0 < m < 1
                     for m in self.milestones),
             f"milestones must be fractions of the run in (0, 1), got {self.milestones}")
        need(0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1), got "
             f"{self.label_smoothing}")
        need(self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}")
        need(isinstance(self.augment, list) and all(a in AUGMENTS for a in self.augment),
             f"augment must be a list of {AUGMENTS}, got {self.augment}")
        need(not {"flip", "altflip"} <= set(self.augment), "augment: 'flip' and 'altflip' "
             "are two ways of flipping; choose one")
        need(0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got "
             f"{self.val_fraction}")
        for name in ("early_stopping", "checkpoint_every", "max_steps", "crop_padding",
                     "lookahead_k", "cutout", "health_every"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        need(self.time_limit >= 0, f"time_limit must be >= 0, got {self.time_limit}")
        need(isinstance(self.model_kwargs, dict), "model_kwargs must be a mapping")
        need(self.distributed in DISTRIBUTED, f"distributed must be one of {DISTRIBUTED}, "
             f"got {self.distributed!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def from_checkpoint(cls, meta: dict[str, Any], source: str) -> TrainConfig:
        """The recipe a checkpoint's ``meta`` (already schema-checked) was trained with;
        CheckpointError when the file holds no valid recipe."""
        require_training(meta, source)
        try:
            return cls.from_dict(meta["config"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(f'{source}: "config" is not a valid recipe ({e})') from None

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})


# Presets: named starting points; command-line options override them.
PRESETS: dict[str, dict[str, Any]] = {
    # the main job: LeNet-5 on the bundled digits, about a minute on 2 cores
    "digits-lenet5": dict(model="lenet5", data="digits", epochs=15, batch_size=64, lr=0.1,
                          label_smoothing=0.1, augment=["crop"], crop_padding=2,
                          model_kwargs={"padding": 2}, val_fraction=0.125),
    # MNIST (validation: 10% of the training set); 30 epochs: 10 fell short (README)
    "mnist-lenet5": dict(model="lenet5", data="mnist", epochs=30, batch_size=64, lr=0.1,
                         label_smoothing=0.1, augment=["crop"], crop_padding=2,
                         model_kwargs={"padding": 2}, val_fraction=0.1),
    # the ConvNetJS demo network, for comparison; the demo trains it with Adadelta at batch 4,
    # here plain SGD with momentum at batch 32 (far fewer Python-level steps)
    "cifar10-convnetjs": dict(model="convnetjs_cifar10", data="cifar10", epochs=10,
                              batch_size=32, lr=0.01, momentum=0.9, nesterov=False,
                              weight_decay=1e-4, schedule="constant", augment=["crop", "flip"],
                              crop_padding=2),
    # He et al. 2015: SGD 0.1, momentum 0.9, wd 1e-4, batch 128, pad-4 crop + flip,
    # /10 at 50% and 75% of the run (the paper: 32k and 48k of 64k iterations)
    "cifar10-resnet20": dict(model="resnet20", data="cifar10", epochs=160, batch_size=128,
                             lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
                             schedule="multistep", milestones=[0.5, 0.75],
                             augment=["crop", "flip"], crop_padding=4),
    # airbench94's recipe (models/airbench.py): cifar10-fast and cifar10-quick
    **AIRBENCH_PRESETS,
}


def preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return dict(PRESETS[name])
