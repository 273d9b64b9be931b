"""Command-line interface: ``convnetpy --version``, ``convnetpy info``, ``convnetpy demo``."""

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
    from convnetpy import models, nn, optim

    cp.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = models.get("convnetjs_cifar10", num_classes=2)
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


def _load_model(spec: str, num_classes: int | None):
    """A zoo name, or ``path/to/file.py:factory`` (a function or class returning a Module)."""
    import importlib.util
    from pathlib import Path

    from . import models
    from .nn import Module

    if ":" not in spec:
        return models.get(spec, num_classes=num_classes), models.default_input_size(spec)
    path, _, attr = spec.rpartition(":")
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"no such file: {path} (MODEL is a zoo name or path/to/file.py:factory)")
    mod_spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    if not hasattr(module, attr):
        raise ValueError(f"{path} has no attribute {attr!r}")
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    model = getattr(module, attr)(**kwargs)
    if not isinstance(model, Module):
        raise ValueError(f"{spec} returned {type(model).__name__}, not a convnetpy Module")
    return model, None


def _parse_input(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        vals = ()
    if len(vals) != 3 or min(vals) < 1:
        raise ValueError(f"--input must be CxHxW like 3x224x224, got {text!r}")
    return vals


def cmd_summary(args) -> int:
    from .analysis import summary

    model, default = _load_model(args.model, args.num_classes)
    chw = _parse_input(args.input) if args.input else default
    if chw is None:
        raise ValueError("--input CxHxW is required for a model loaded from a file")
    s = summary(model, (args.batch,) + tuple(chw), optimizer=args.optimizer)
    print({"text": s.to_text, "md": s.to_markdown, "csv": s.to_csv,
           "json": s.to_json}[args.format]())
    return 0


def cmd_calc(args) -> int:
    from .analysis import conv_calc, parse_volume, pool_calc

    w, h, d = parse_volume(args.input)
    if args.layer == "conv":
        res = conv_calc(w, h, d, args.filters, args.kernel, args.stride or 1, args.pad)
    else:
        res = pool_calc(w, h, d, args.kernel, args.stride, args.pad)
    print(res.text)
    return 0 if res.fits else 1


def cmd_info(args) -> int:
    from .backend import info

    report = info.report()
    print(info.to_json(report) if args.json else info.format_report(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    from .backend.cpu import CpuPathError
    from .shape import ShapeError
    from .train import TrainingError
    from .version import __version__

    parser = argparse.ArgumentParser(
        prog="convnetpy",
        description="Convolutional neural networks from first principles on NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"convnetpy {__version__}")
    sub = parser.add_subparsers(dest="command")
    p_demo = sub.add_parser("demo", help="train a small CNN on a synthetic task (a smoke test)")
    p_demo.add_argument("--steps", type=int, default=40, help="training steps (default 40)")
    p_demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p_sum = sub.add_parser("summary", help="per-layer shapes, formulas, parameters, MACs, "
                                           "memory and receptive fields of a model")
    p_sum.add_argument("model", help="a zoo name (see --list) or path/to/file.py:factory")
    p_sum.add_argument("--input", help="CxHxW, e.g. 3x224x224 (default: the zoo model's)")
    p_sum.add_argument("--batch", type=int, default=1, help="batch size N (default 1)")
    p_sum.add_argument("--format", choices=["text", "md", "csv", "json"], default="text")
    p_sum.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default="sgd",
                       help="optimizer state in the training-memory estimate")
    p_sum.add_argument("--num-classes", type=int, default=None)
    p_calc = sub.add_parser("calc", help="output volume and parameters of one CONV or POOL "
                                         "layer, with the arithmetic (exit 1 if it does not fit)")
    p_calc.add_argument("layer", choices=["conv", "pool"])
    p_calc.add_argument("--input", required=True, help="W1xH1xD1, e.g. 32x32x3")
    p_calc.add_argument("--filters", type=int, help="K, the number of filters (conv)")
    p_calc.add_argument("--kernel", type=int, required=True, help="F, the filter size")
    p_calc.add_argument("--stride", type=int, default=None,
                        help="S (default 1 for conv, F for pool)")
    p_calc.add_argument("--pad", type=int, default=0, help="P, zero-padding (default 0)")
    sub.add_parser("models", help="list the model zoo")
    p_info = sub.add_parser("info", help="the CPU, its features, the compute path chosen and "
                                         "why, threads, BLAS and versions")
    p_info.add_argument("--json", action="store_true", help="print it as JSON")
    from . import cli_train, cli_viz

    cli_train.add_parsers(sub)
    cli_viz.add_parsers(sub)
    args = parser.parse_args(argv)
    try:
        from .backend import cpu

        cpu.choose()  # a compute path this CPU cannot run (CONVNETPY_CPU): said first
        if args.command == "demo":
            if args.steps < 1:
                parser.error("--steps must be at least 1")
            return demo(args.steps, args.seed)
        if args.command == "summary":
            if args.batch < 1:
                parser.error("--batch must be at least 1")
            return cmd_summary(args)
        if args.command == "calc":
            if args.layer == "conv" and args.filters is None:
                parser.error("calc conv needs --filters K")
            return cmd_calc(args)
        if args.command in ("train", "eval", "predict", "dashboard"):
            return getattr(cli_train, f"cmd_{args.command}")(args)
        if args.command == "viz":
            return cli_viz.cmd_viz(args)
        if args.command == "info":
            return cmd_info(args)
        if args.command == "models":
            from . import models

            for name in models.list_models():
                c, h, w = models.default_input_size(name)
                print(f"{name:18s} {f'{c}x{h}x{w}':10s} {models.describe(name)}")
            return 0
    except (ShapeError, ValueError, FileNotFoundError, TrainingError, CpuPathError) as e:
        print(f"convnetpy {args.command}: error: {e}", file=sys.stderr)
        return 2
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
