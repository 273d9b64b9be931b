"""What a run shows and writes: the progress bar (tqdm), the fixed-width epoch line,
metrics.jsonl and the PNG of the loss and accuracy curves (matplotlib, viz.plots)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any


class ProgressBar:
    """The per-epoch progress bar, on tqdm: steps done/total, the loss, the rate (it/s) and
    the time left (ETA); ``update(done, loss)`` takes the number of steps done so far.

    Shown only when ``enabled`` and the stream is a terminal (tqdm's ``disable=None`` rule,
    the same rule as before tqdm), so logs and pipes get no control characters; in Jupyter
    with ipywidgets it is a notebook widget (``tqdm.auto``; without ipywidgets tqdm falls
    back to the text bar with a warning). ``file`` defaults to sys.stderr; ``initial`` is
    the step an epoch resumes from, so the rate counts only the steps run here.

    >>> import io
    >>> out = io.StringIO()  # not a terminal: nothing is written
    >>> bar = ProgressBar(10, "epoch 1/3", file=out)
    >>> bar.update(4, 0.5); bar.close()
    >>> out.getvalue(), bar.enabled
    ('', False)
    """

    def __init__(self, total: int, prefix: str, enabled: bool = True, file: IO | None = None,
                 initial: int = 0) -> None:
        self.bar, self.enabled = None, False
        if not enabled:  # --quiet: not even tqdm's import (a tenth of a second)
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=prefix, initial=initial, unit="it", leave=False,
                        file=file if file is not None else sys.stderr, mininterval=0.2,
                        dynamic_ncols=True, disable=None)
        self.enabled = not self.bar.disable

    def update(self, done: int, loss: float) -> None:
        if self.enabled:
            self.bar.postfix = f"loss={loss:.4f}"  # cheap: formatted only when tqdm prints
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def epoch_line(m: dict[str, Any], epochs: int) -> str:
    return (f"epoch {m['epoch']:>3d}/{epochs:<3d} loss {m['loss']:7.4f}  acc {m['acc']:7.2%}  "
            f"val_loss {m['val_loss']:7.4f}  val_acc {m['val_acc']:7.2%}  "
            f"time {m['time']:7.1f}s  {m['img_per_s']:8.0f} img/s  lr {m['lr']:.2e}"
            + (f"  val_acc with TTA {m['tta']} {m['val_acc_tta']:.2%}" if "tta" in m else ""))


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss, accuracy and learning rate per epoch, train and validation, as a PNG (matplotlib,
    see viz.plots.curves_figure); written atomically, so a reader never sees half a file."""
    from ..viz.plots import curves_figure, save_figure

    save_figure(curves_figure(history), path)
