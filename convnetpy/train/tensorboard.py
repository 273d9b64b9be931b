"""TensorBoard event files of a run (``TrainConfig.tensorboard``, ``convnetpy train
--tensorboard DIR``), written with tensorboardX (the ``tensorboard`` extra) into
``DIR/<run id>``, so that the runs of one folder compare side by side in TensorBoard.

What is written, against the run's global step (a resumed run appends a new event file in
the same folder and hides what the first one wrote past the checkpoint's step):

- every step: ``train/loss``, ``train/batch_accuracy``, ``train/lr`` (``train/lr/group<i>``
  with several parameter groups), as one event (~0.1 ms of CPU a step);
- every epoch: ``epoch/loss``, ``epoch/acc``, ``epoch/val_loss``, ``epoch/val_acc`` (and
  ``epoch/val_loss_tta``, ``epoch/val_acc_tta`` when the epoch has them), ``epoch/img_per_s``;
  the images ``filters/<layer>`` (the first convolution's filters, ``viz.render.filters``)
  and ``val/predictions`` (the first validation images captioned with the predicted and
  the true class), the same predictions as a text table;
- at each health record (``health_every``; train/health): ``health/update_ratio/<layer>``,
  ``health/grad_norm/<layer>``, ``health/grad_norm_total``, ``health/dead_relu/<layer>``,
  the histograms ``weights/<param>`` and ``gradients/<param>`` of the parameters as they
  are then (64 equal bins from min to max: ``uniform_histogram``), ``activations/<layer>``
  from the record's own counts (``raw_histogram``: the activations are gone by then), and
  each new warning as text;
- the config as text at the start, the status at the end (also of a failed run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .state import Callback, RunState

INSTALL_HINT = 'pip install "convnetpy[tensorboard]"'


class TensorBoardMissing(ImportError):
    """tensorboardX is not installed: ``TrainConfig.tensorboard`` needs it."""


def summary_writer_class():
    """tensorboardX's ``SummaryWriter``, or ``TensorBoardMissing`` with the install hint."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise TensorBoardMissing(f"tensorboard=... writes TensorBoard event files with "
                                 f"tensorboardX, which is not installed: {INSTALL_HINT}") from e
    return SummaryWriter


def uniform_histogram(values: np.ndarray, bins: int = 64) -> dict[str, Any]:
    """The arguments of ``SummaryWriter.add_histogram_raw`` for ``values`` in ``bins``
    equal bins from their min to their max, with exact min, max, sum and sum of squares.
    NOTE: tensorboardX's own ``add_histogram`` bins into ~1500 TensorFlow buckets by a
    search per value, ~6x slower: 0.2 s per health record for LeNet-5's parameters and
    gradients, where this takes a few milliseconds.

    >>> h = uniform_histogram(np.array([0.0, 1.0, 1.0, 4.0]), bins=4)
    >>> h["bucket_counts"], h["bucket_limits"], h["sum_squares"]
    ([1, 2, 0, 1], [1.0, 2.0, 3.0, 4.0], 18.0)
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    return {"min": lo, "max": hi, "num": int(x.size), "sum": float(x.sum()),
            "sum_squares": float(np.square(x).sum()), "bucket_limits": edges[1:].tolist(),
            "bucket_counts": counts.tolist()}


def raw_histogram(hist: dict[str, list], mean: float | None = None,
                  std: float | None = None) -> dict[str, Any]:
    """The arguments of ``SummaryWriter.add_histogram_raw`` for a health-record histogram
    ``{"edges", "counts"}``: TensorBoard's buckets end at ``bucket_limits`` (the right edges);
    min and max are the outer edges of the outermost non-empty bins (the record keeps no
    exact ones), the sums come from the record's mean and std when given.

    >>> raw = raw_histogram({"edges": [-1.0, 0.0, 1.0, 2.0], "counts": [0, 3, 1]}, 0.5, 0.5)
    >>> raw["min"], raw["max"], raw["num"], raw["sum"], raw["sum_squares"]
    (0.0, 2.0, 4, 2.0, 2.0)
    """
    edges, counts = np.asarray(hist["edges"], float), np.asarray(hist["counts"], float)
    used = np.flatnonzero(counts)
    lo, hi = (used[0], used[-1]) if len(used) else (0, len(counts) - 1)
    num = int(counts.sum())
    mean = 0.0 if mean is None else mean
    sq = mean * mean + (0.0 if std is None else std * std)
    return {"min": float(edges[lo]), "max": float(edges[hi + 1]), "num": num,
            "sum": mean * num, "sum_squares": sq * num,
            "bucket_limits": edges[1:].tolist(), "bucket_counts": counts.tolist()}


def first_conv(model) -> tuple[str, Any] | None:
    """(path, module) of the model's first 2-D convolution, or None."""
    from ..nn import Conv2d

    for name, m in model.named_modules():
        if isinstance(m, Conv2d):
            return name, m
    return None


class TensorBoardLogger(Callback):
    """Writes the run to TensorBoard event files in ``folder/<run id>`` (see the module
    docstring): the scalars every ``every`` steps, the ``health`` monitor's records as they
    come (``default_callbacks`` passes its monitor and puts this logger after it), and
    ``examples`` validation images a epoch. Raises ``TensorBoardMissing`` (an ImportError)
    when tensorboardX is not installed, before the run starts."""

    def __init__(self, folder: str | Path, health=None, every: int = 1,
                 examples: int = 8) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"TensorBoardLogger: every must be a positive integer, got "
                             f"{every!r}")
        self.SummaryWriter = summary_writer_class()
        from tensorboardX.proto.summary_pb2 import Summary

        self.Summary = Summary
        self.folder, self.health, self.every = Path(folder), health, every
        self.examples = examples
        self.writer = None
        self.logdir: Path | None = None
        self.seen = (0, 0)  # the health records and warnings already written

    def on_train_begin(self, state: RunState) -> None:
        self.logdir = self.folder / Path(state.run_dir).name
        # a resumed run: hide what an earlier process wrote after the checkpoint's step
        self.writer = self.SummaryWriter(
            logdir=str(self.logdir), purge_step=state.step + 1 if state.step else None,
            filename_suffix=f".step{state.step}")
        h = self.health
        self.seen = (len(h.records), len(h.warnings)) if h is not None else (0, 0)
        text = json.dumps(state.config.to_dict(), indent=1)
        self.writer.add_text("config", f"```\n{text}\n```", state.step)

    def scalars(self, values: dict[str, float | None], step: int) -> None:
        """``values`` (None left out) as one event: tensorboardX passes each event through
        a multiprocessing queue, ~140 us of CPU, so three scalars a step in one event cost
        ~80 us where three ``add_scalar`` cost ~420 (measured on 2 cores)."""
        Summary = self.Summary
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(v))
                                 for tag, v in values.items() if v is not None])
        if summary.value:
            self.writer.file_writer.add_summary(summary, step)

    def on_step_end(self, state: RunState) -> None:
        w, step = self.writer, state.step
        if step % self.every == 0:
            groups = state.optimizer.param_groups
            lrs = ({"train/lr": groups[0]["lr"]} if len(groups) == 1 else
                   {f"train/lr/group{i}": g["lr"] for i, g in enumerate(groups)})
            self.scalars({"train/loss": state.loss,
                          "train/batch_accuracy": state.correct / max(state.batch_size, 1),
                          **lrs}, step)
        h = self.health
        if h is not None and (len(h.records), len(h.warnings)) != self.seen:
            for rec in h.records[self.seen[0]:]:
                self.write_health(rec, state.model if rec["step"] == step else None)
            for warn in h.warnings[self.seen[1]:]:
                w.add_text("health/warnings", warn["message"], warn["step"])
            self.seen = (len(h.records), len(h.warnings))

    def write_health(self, rec: dict[str, Any], model=None) -> None:
        """The scalars and histograms of one health record (train/health/log.py); with
        ``model`` also its parameters' and their gradients' histograms as they are now."""
        w, step = self.writer, rec["step"]
        values = {"health/grad_norm_total": rec["grad_norm"]}  # None: not finite
        for layer, v in rec["layers"].items():
            values[f"health/update_ratio/{layer}"] = v["ratio"]
            values[f"health/grad_norm/{layer}"] = v["grad_norm"]
        for layer, a in rec["activations"].items():
            values[f"health/dead_relu/{layer}"] = a["dead"]  # None: not a ReLU
        self.scalars(values, step)
        for layer, a in rec["activations"].items():
            if a.get("hist") and sum(a["hist"]["counts"]):
                w.add_histogram_raw(f"activations/{layer}", global_step=step,
                                    **raw_histogram(a["hist"], a["mean"], a["std"]))
        if model is not None:
            for name, p in model.named_parameters():
                if p.requires_grad:
                    w.add_histogram_raw(f"weights/{name}", global_step=step,
                                        **uniform_histogram(p.numpy()))
                    if p.grad is not None:
                        w.add_histogram_raw(f"gradients/{name}", global_step=step,
                                            **uniform_histogram(p.grad.numpy()))

    def on_epoch_end(self, state: RunState) -> None:
        keys = ("loss", "acc", "val_loss", "val_acc", "val_loss_tta", "val_acc_tta", "img_per_s")
        self.scalars({f"epoch/{k}": state.record.get(k) for k in keys}, state.step)
        self.write_images(state)
        self.writer.flush()  # an epoch shows in TensorBoard when it ends

    def write_images(self, state: RunState) -> None:
        """The first convolution's filters and the first validation images, predicted."""
        from ..autograd import no_grad
        from ..tensor import Tensor
        from ..viz import render
        from ..viz.gradients import inspecting

        w, step = self.writer, state.step
        conv = first_conv(state.model)
        if conv is not None and conv[1].weight.numpy().ndim == 4:
            weight = conv[1].weight.numpy()  # each filter ~48 px: TensorBoard shows pixels 1:1
            img = render.filters(weight, render.scale_for(*weight.shape[2:], 48))
            w.add_image(f"filters/{conv[0]}", _chw(img), step, dataformats="CHW")
        loader = state.val_loader
        n = min(self.examples, len(loader.dataset))
        if n == 0:
            return
        index = np.arange(n)
        x, y = loader.make_batch(index, 0, 0)
        with inspecting(state.model) as model, no_grad():  # modes and grads kept as they were
            logits = model(Tensor(x)).numpy().astype(np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        pred = probs.argmax(axis=1)
        classes = state.dataset.classes
        images = loader.dataset.images[index]
        if images.shape[1] not in (1, 3):  # a picture needs grey or RGB: the first channel
            images = images[:, :1]
        scale = render.scale_for(*images.shape[2:], 96)
        parts = [(f"{classes[p]} {probs[i, p]:.0%} (true {classes[t]})",
                  render.pixels_image(images[i], scale)) for i, (p, t) in enumerate(zip(pred, y))]
        w.add_image("val/predictions", _chw(render.montage(parts, columns=4)), step,
                    dataformats="CHW")
        rows = [f"| {i} | {classes[t]} | {classes[p]} | {probs[i, p]:.3f} |"
                for i, (p, t) in enumerate(zip(pred, y))]
        w.add_text("val/predictions", "| # | true | predicted | probability |\n"
                   "|---|---|---|---|\n" + "\n".join(rows), step)

    def on_train_end(self, state: RunState) -> None:
        if self.writer is None:
            return
        try:
            self.writer.add_text("status", f"{state.status} at step {state.step}", state.step)
            self.writer.close()  # flushes
        except OSError as e:  # never hide the run's own outcome (or failure) behind this one
            state.log(f"tensorboard: could not finish the event file in {self.logdir}: {e}")
        self.writer = None


def _chw(img) -> np.ndarray:
    """A Pillow image as uint8 (3, H, W)."""
    return np.ascontiguousarray(np.asarray(img.convert("RGB")).transpose(2, 0, 1))
