"""What a TrainConfig builds: the model, optimizer, schedule and transforms of a run, its run
folder, and a trained model back from a checkpoint (``load_trained``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import models, optim
from ..analysis import check
from ..data import DataLoader, get_dataset
from ..data import transforms as T
from ..data.dataset import ArrayDataset
from ..io import CheckpointError
from ..io import checkpoint as ckpt_mod
from ..nn import BatchNorm1d, BatchNorm2d, Conv2d, SyncBatchNorm
from ..nn import init as nn_init
from ..random import manual_seed
from .config import TrainConfig


class TrainingData(NamedTuple):
    """A run's data: the whole dataset, its training and validation splits, and the
    training split's per-channel mean and std (what the run normalises with)."""
    dataset: ArrayDataset
    train: ArrayDataset
    val: ArrayDataset
    mean: list[float]
    std: list[float]


def prepare_data(cfg: TrainConfig, data: ArrayDataset | str | None = None) -> TrainingData:
    """``data`` (a dataset, a ``--data`` spec, default the config's) split as the config
    says, with the training split's channel statistics."""
    spec = data or cfg.data
    if isinstance(data, ArrayDataset):
        ds = data
    elif spec.partition(":")[0] == "synthetic":  # the only data whose shape the model sets
        ds = get_dataset(spec, cfg.image_size, input_shape=model_input_shape(cfg))
    else:
        ds = get_dataset(spec, cfg.image_size)
    train_ds, val_ds = ds.split(cfg.val_fraction, cfg.seed)
    return TrainingData(ds, train_ds, val_ds, *channel_stats(train_ds))


def model_input_shape(cfg: TrainConfig) -> tuple[int, int, int]:
    """The (C, H, W) the config's zoo model takes: the zoo's size for it, less LeNet-5's
    first-conv ``padding`` on each side (``padding=2`` is its 28x28 MNIST variant, as the
    digits and mnist presets build it)."""
    c, h, w = models.default_input_size(cfg.model)
    pad = cfg.model_kwargs.get("padding", 0) if cfg.model == "lenet5" else 0
    if isinstance(pad, int) and 0 < 2 * pad < min(h, w):
        h, w = h - 2 * pad, w - 2 * pad
    return c, h, w


def prepare_model(cfg: TrainConfig, data: TrainingData, model=None):
    """The run's model as a run starts it: the generator seeded, ``model`` or the config's
    zoo model built, its shapes checked on the data (a mistake is reported before the
    first step) and initialised as the config says."""
    manual_seed(cfg.seed)
    ds = data.dataset
    if model is None:
        model = build_model(cfg, ds.num_classes, ds.image_shape[0])
    check(model, (1,) + ds.image_shape)
    initialise(cfg, model, data.train, data.mean, data.std)
    return model


def train_loader(cfg: TrainConfig, data: TrainingData, sampler=None) -> DataLoader:
    """Batches of the training split, shuffled per epoch from the seed, augmented and
    normalised (``sampler``: this process's share in a data-parallel run)."""
    size = len(sampler) if sampler is not None else len(data.train)
    return DataLoader(data.train, cfg.batch_size, shuffle=True, seed=cfg.seed,
                      drop_last=size > cfg.batch_size,
                      transform=transforms_for(cfg, data.dataset.image_shape, data.mean,
                                               data.std, True), sampler=sampler)


def channel_stats(ds: ArrayDataset) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of ``ds``'s pixels scaled to [0, 1]."""
    n = ds.images.shape[0] * ds.images.shape[2] * ds.images.shape[3]
    mean, std = [], []
    for c in range(ds.images.shape[1]):  # exact integer sums: no float copy of the dataset
        pixels = ds.images[:, c].reshape(-1)
        total = int(pixels.sum(dtype=np.uint64))
        squares = int(np.square(pixels, dtype=np.uint32).sum(dtype=np.uint64))
        m = total / n
        mean.append(m / 255.0)
        std.append(max(float(np.sqrt(max(squares / n - m * m, 0.0))) / 255.0, 1e-3))
    return mean, std


def build_model(cfg: TrainConfig, num_classes: int, in_channels: int):
    return models.get(cfg.model, num_classes=num_classes, in_channels=in_channels,
                      **cfg.model_kwargs)


def param_groups(cfg: TrainConfig, model) -> list[dict[str, Any]]:
    """The model's trainable parameters as optimizer groups: batch norm's biases apart
    when ``bn_bias_lr_factor`` is not 1 (their lr times the factor, their weight decay
    divided by it, so that lr * decay, the shrink per step, stays the same)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    factor = cfg.bn_bias_lr_factor
    if factor == 1.0:
        return [{"params": trainable}]
    norms = (BatchNorm1d, BatchNorm2d, SyncBatchNorm)
    norm = {id(m.bias) for m in model.modules()
            if isinstance(m, norms) and m.bias is not None and m.bias.requires_grad}
    groups = [{"params": [p for p in trainable if id(p) not in norm]},
              {"params": [p for p in trainable if id(p) in norm], "lr": cfg.lr * factor,
               "weight_decay": cfg.weight_decay / factor}]
    return [g for g in groups if g["params"]]


def make_optimizer(cfg: TrainConfig, model, total_steps: int = 1):
    """The config's optimizer over ``param_groups``, inside ``optim.Lookahead`` when
    ``lookahead_k`` is set (``total_steps``, the run's length, paces its ramp)."""
    params = param_groups(cfg, model)
    if cfg.optimizer == "sgd":
        opt = optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                        weight_decay=cfg.weight_decay, nesterov=cfg.nesterov and cfg.momentum > 0)
    elif cfg.optimizer == "adam":
        opt = optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adamw":
        opt = optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum,
                            weight_decay=cfg.weight_decay)
    if not cfg.lookahead_k:
        return opt
    alpha = (optim.cubic_alpha(max(int(total_steps), 1), cfg.lookahead_alpha)
             if cfg.lookahead_ramp else cfg.lookahead_alpha)
    return optim.Lookahead(opt, k=cfg.lookahead_k, alpha=alpha)


def make_scheduler(cfg: TrainConfig, opt, total: int):
    s = optim.lr_scheduler
    if cfg.schedule == "onecycle":
        # each group peaks at its own rate (batch norm biases' may be a multiple of lr)
        return s.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total,
                            pct_start=cfg.pct_start,
                            cycle_momentum=cfg.optimizer in ("sgd", "rmsprop")
                            and cfg.momentum > 0)
    if cfg.schedule == "cosine":
        return s.CosineAnnealingLR(opt, T_max=total)
    if cfg.schedule == "multistep":
        return s.MultiStepLR(opt, [int(m * total) for m in cfg.milestones], cfg.gamma)
    if cfg.schedule == "step":
        return s.StepLR(opt, max(total // 3, 1), cfg.gamma)
    if cfg.schedule == "triangle":  # up from lr_start_factor * lr, then down to lr_end_factor
        peak = min(max(int(cfg.pct_start * total), 1), total - 1) if total > 1 else 1
        return s.SequentialLR(opt, [s.LinearLR(opt, cfg.lr_start_factor, 1.0, peak),
                                    s.LinearLR(opt, 1.0, cfg.lr_end_factor,
                                               max(total - peak, 1))], [peak])
    return s.StepLR(opt, step_size=total + 1, gamma=1.0)  # constant


def transforms_for(cfg: TrainConfig, shape, mean, std, train: bool):
    """The batch transforms of the training (augmented) or evaluation side of a run."""
    steps: list = []
    if train:
        if "crop" in cfg.augment:
            steps.append(T.RandomCrop(shape[1], padding=cfg.crop_padding))
        if "translate" in cfg.augment:
            steps.append(T.RandomCrop(shape[1], padding=cfg.crop_padding, mode="reflect"))
        if "flip" in cfg.augment:
            steps.append(T.RandomHorizontalFlip())
        if "altflip" in cfg.augment:
            steps.append(T.AlternatingFlip(cfg.seed))
        if "cutout" in cfg.augment:
            steps.append(T.Cutout(cfg.cutout))
    steps.append(T.Normalize(mean, std))
    return T.Compose(steps)


def initialise(cfg: TrainConfig, model, train_ds: ArrayDataset, mean, std) -> None:
    """What ``cfg.init`` asks of the model before training: ``"whiten"`` sets the first
    convolution's weight by ``nn.init.whiten_`` from (up to 5,000 of) the training
    images, normalised as the model sees them, and freezes it."""
    if cfg.init != "whiten":
        return
    conv = next((m for m in model.modules() if isinstance(m, Conv2d)), None)
    if conv is None:
        raise ValueError(f"init='whiten' needs a model with a Conv2d; {type(model).__name__} "
                         "has none")
    images = T.Normalize(mean, std)(train_ds.images[:5000].astype(np.float32) / 255.0, None)
    try:
        nn_init.whiten_(conv.weight, images)
    except ValueError as e:
        raise ValueError(f"init='whiten' on the first convolution of "
                         f"{type(model).__name__}: {e}") from None
    conv.weight.requires_grad_(False)


def new_run_dir(cfg: TrainConfig) -> Path:
    """A fresh folder under ``cfg.out`` (``run_id``, or the time and the model's name)."""
    base = Path(cfg.out)
    rid = cfg.run_id or time.strftime("%Y%m%d-%H%M%S") + f"-{cfg.model}"
    path, k = base / rid, 2
    while path.exists() and not cfg.run_id:
        path, k = base / f"{rid}-{k}", k + 1
    path.mkdir(parents=True, exist_ok=True)
    return path


class Trained(NamedTuple):
    """A trained model back from its checkpoint (``load_trained``)."""
    checkpoint: Any  # convnetpy.io.Checkpoint: its meta holds classes, mean, std, input_shape
    config: TrainConfig
    model: Any


def load_trained(path: str | Path) -> Trained:
    """The model of a run folder or checkpoint folder, built from the run's recipe with the
    checkpoint's weights, in evaluation mode."""
    ck = ckpt_mod.load_checkpoint(path)
    cfg = TrainConfig.from_checkpoint(ck.meta, str(ck.path))
    given = ck.meta.get("given", {}).get("model")
    if given:
        raise ValueError(f"{ck.path}: this run trained a model object ({given}), not a zoo "
                         f"model, so it cannot be rebuilt from its recipe; build the model "
                         f"and load the weights: convnetpy.io.restore("
                         f"convnetpy.io.load_checkpoint(path), model)")
    try:
        model = models.get(cfg.model, num_classes=ck.meta["num_classes"],
                           in_channels=ck.meta["input_shape"][0], **cfg.model_kwargs)
    except (TypeError, ValueError) as e:  # the recipe names no model this convnetpy builds
        raise CheckpointError(f"{ck.path}: the recipe's model {cfg.model!r} "
                              f"{cfg.model_kwargs or ''} cannot be built ({e})") from None
    ckpt_mod.restore(ck, model)
    model.eval()
    return Trained(ck, cfg, model)
