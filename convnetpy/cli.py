"""Command-line interface: ``convnetpy --version``, ``convnetpy demo``."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _stripes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic 2-class image task: horizontal vs vertical stripes, with noise."""
    y = rng.integers(0, 2, n)
    phase = rng.integers(0, 4, n)
    grid = np.arange(32)
    rows = ((grid[None, :, None] + phase[:, None, None]) // 2 % 2).astype(np.float32)
    img = np.where(y[:, None, None] == 0, np.broadcast_to(rows, (n, 32, 32)),
                   np.broadcast_to(rows.transpose(0, 2, 1), (n, 32, 32)))
    x = np.repeat(img[:, None], 3, axis=1) + 0.5 * rng.standard_normal((n, 3, 32, 32))
    return x.astype(np.float32), y


def demo(steps: int = 40, seed: int = 0) -> int:
    """Train the ConvNetJS CIFAR-10 network on a synthetic stripes task and report it."""
    import convnetpy as cp
    from convnetpy import nn, optim

    cp.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 20, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 20, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(320, 2),
    )
    print(net)
    print(f"parameters: {sum(p.numel() for p in net.parameters()):,}")
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = _stripes(32, rng)
        loss = loss_fn(net(cp.tensor(x)), cp.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == 1:
            print(f"step {step:3d}  loss {loss.item():.4f}")
    net.eval()
    x, y = _stripes(256, rng)
    with cp.no_grad():
        acc = float((net(cp.tensor(x)).argmax(1).numpy() == y).mean())
    print(f"held-out accuracy on 256 fresh images: {acc:.1%}  "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0 if acc > 0.9 else 1


def main(argv: list[str] | None = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="convnetpy",
        description="Convolutional neural networks from first principles on NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"convnetpy {__version__}")
    sub = parser.add_subparsers(dest="command")
    p_demo = sub.add_parser("demo", help="train a small CNN on a synthetic task (a smoke test)")
    p_demo.add_argument("--steps", type=int, default=40, help="training steps (default 40)")
    p_demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.steps < 1:
            parser.error("--steps must be at least 1")
        return demo(args.steps, args.seed)
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
