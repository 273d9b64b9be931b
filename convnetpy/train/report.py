"""What a run shows and writes: the progress bar, the fixed-width epoch line, metrics.jsonl
and the PNG of the loss and accuracy curves."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


class ProgressBar:
    """A one-line bar on a terminal (silent when output is not a terminal)."""

    def __init__(self, total: int, prefix: str, enabled: bool = True) -> None:
        self.total, self.prefix = total, prefix
        self.enabled = enabled and sys.stderr.isatty()
        self.start, self.last = time.perf_counter(), 0.0

    def update(self, done: int, loss: float) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < self.total):
            return
        self.last = now
        width = 30
        fill = int(width * done / max(self.total, 1))
        rate = done / max(now - self.start, 1e-9)
        sys.stderr.write(f"\r{self.prefix} [{'=' * fill}{' ' * (width - fill)}] {done}/"
                         f"{self.total} loss {loss:.4f} {rate:.1f} it/s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def epoch_line(m: dict[str, Any], epochs: int) -> str:
    return (f"epoch {m['epoch']:>3d}/{epochs:<3d} loss {m['loss']:7.4f}  acc {m['acc']:7.2%}  "
            f"val_loss {m['val_loss']:7.4f}  val_acc {m['val_acc']:7.2%}  "
            f"time {m['time']:7.1f}s  {m['img_per_s']:8.0f} img/s  lr {m['lr']:.2e}"
            + (f"  val_acc with TTA {m['tta']} {m['val_acc_tta']:.2%}" if "tta" in m else ""))


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss (left) and accuracy (right) per epoch, train and validation, as a PNG."""
    from PIL import Image, ImageDraw

    from ..viz.render import save_png

    w, h, pad = 900, 360, 50
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    epochs = [m["epoch"] for m in history]
    panels = [("loss", ("loss", "val_loss")), ("accuracy", ("acc", "val_acc"))]
    colors = {"loss": (31, 119, 180), "acc": (31, 119, 180), "val_loss": (214, 39, 40),
              "val_acc": (214, 39, 40)}
    for i, (title, keys) in enumerate(panels):
        x0, x1 = pad + i * (w // 2), (i + 1) * (w // 2) - 20
        y0, y1 = 30, h - pad
        draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
        vals = [m[k] for m in history for k in keys if m.get(k) is not None]
        if not vals:
            continue
        lo, hi = min(vals), max(vals)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        draw.text((x0, 8), f"{title}  (blue: train, red: validation)", fill=(0, 0, 0))
        draw.text((4, y0), f"{hi:.3g}", fill=(0, 0, 0)) if i == 0 else draw.text(
            (x0 - 45, y0), f"{hi:.3g}", fill=(0, 0, 0))
        draw.text((x0 - 45 if i else 4, y1 - 10), f"{lo:.3g}", fill=(0, 0, 0))
        draw.text((x1 - 60, y1 + 8), f"epoch {epochs[-1]}", fill=(0, 0, 0))
        span = max(epochs[-1] - epochs[0], 1)
        for k in keys:
            pts = [(x0 + (m["epoch"] - epochs[0]) / span * (x1 - x0),
                    y1 - (m[k] - lo) / (hi - lo) * (y1 - y0)) for m in history
                   if m.get(k) is not None]
            if len(pts) > 1:
                draw.line(pts, fill=colors[k], width=2)
            for px, py in pts:
                draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colors[k])
    save_png(img, path)
