"""``convnetpy demo``: train the ConvNetJS CIFAR-10 network on a synthetic task (horizontal vs
vertical stripes) with ``fit`` and a callback of its own, as a smoke test of the install."""

from __future__ import annotations

import tempfile
import time

import numpy as np

HELP = "train a small CNN on a synthetic task (a smoke test)"
BATCH, HELD_OUT = 32, 256


def add_arguments(p) -> None:
    p.add_argument("--steps", type=int, default=40, help="training steps (default 40)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def stripes(n: int, rng: np.random.Generator):
    """n noisy 3x32x32 uint8 images of stripes, class 0 horizontal, class 1 vertical, as an
    ArrayDataset."""
    from ..data import ArrayDataset

    y = rng.integers(0, 2, n)
    phase = rng.integers(0, 4, n)
    grid = np.arange(32)
    rows = ((grid[None, :, None] + phase[:, None, None]) // 2 % 2).astype(np.float32)
    img = np.where(y[:, None, None] == 0, np.broadcast_to(rows, (n, 32, 32)),
                   np.broadcast_to(rows.transpose(0, 2, 1), (n, 32, 32)))
    x = np.repeat(img[:, None], 3, axis=1) + 0.5 * rng.standard_normal((n, 3, 32, 32))
    pixels = np.clip(64 + 128 * x, 0, 255).astype(np.uint8)
    return ArrayDataset(pixels, y.astype(np.int64), ["horizontal", "vertical"], "stripes")


def run(args) -> int:
    from .. import models
    from ..random import manual_seed
    from ..train import Callback, TrainConfig, fit
    from .common import usage_error

    if args.steps < 1:
        raise usage_error("--steps must be at least 1")

    class EveryTenSteps(Callback):
        def on_step_end(self, state):
            if state.step % 10 == 0 or state.step == 1:
                print(f"step {state.step:3d}  loss {state.loss:.4f}")

    rng = np.random.default_rng(args.seed)
    # half a batch spare: the stratified split rounds per class
    data = stripes(args.steps * BATCH + BATCH // 2 + HELD_OUT, rng)
    manual_seed(args.seed)
    net = models.get("convnetjs_cifar10", num_classes=2)
    print(net)
    print(f"parameters: {sum(p.numel() for p in net.parameters()):,}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:  # the run folder is not kept
        cfg = TrainConfig(model="convnetjs_cifar10", epochs=1, batch_size=BATCH, lr=0.01,
                          momentum=0.9, weight_decay=0.0, schedule="constant", augment=[],
                          val_fraction=HELD_OUT / len(data), seed=args.seed, progress=False,
                          out=out)
        result = fit(net, data, cfg, callbacks=[EveryTenSteps()], log=lambda line: None)
    acc = result["val_acc"]
    print(f"held-out accuracy on {HELD_OUT} fresh images: {acc:.1%}  "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0 if acc > 0.9 else 1
