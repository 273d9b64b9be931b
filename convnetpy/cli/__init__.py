"""The command line, ``convnetpy COMMAND ...``: one module per command (``COMMANDS``), each
with ``HELP``, ``add_arguments(parser)`` and ``run(args) -> exit code``, over the public API
only. A user's mistake (a bad file, shape, setting or CPU path) is one line on stderr and
exit code 2; ``convnetpy --debug COMMAND`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> its module in this package, in the order ``convnetpy --help`` lists them
COMMANDS = {
    "demo": "demo", "summary": "summary", "calc": "calc", "models": "models", "info": "info",
    "train": "train", "eval": "eval", "predict": "predict", "dashboard": "dashboard",
    "viz": "viz", "explain": "explain", "visualize-class": "visualize_class", "fool": "fool",
    "lr-find": "lr_find", "report": "report", "export": "export", "data": "data",
}


def _module(command: str):
    return importlib.import_module(f"{__name__}.{COMMANDS[command]}")


def build_parser() -> argparse.ArgumentParser:
    from ..version import __version__

    parser = argparse.ArgumentParser(
        prog="convnetpy",
        description="Convolutional neural networks from first principles on NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"convnetpy {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command")
    for name in COMMANDS:
        mod = _module(name)
        mod.add_arguments(sub.add_parser(name, help=mod.HELP))
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..anomaly import AnomalyError
    from ..backend.cpu import CpuPathError
    from ..shape import ShapeError
    from ..train import TrainingError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        from ..backend import cpu

        cpu.choose()  # a compute path this CPU cannot run (CONVNETPY_CPU): said first
        return _module(args.command).run(args)
    except argparse.ArgumentError as e:  # a setting the parser could not check
        parser.error(str(e))
    except (ShapeError, ValueError, OSError, TrainingError, AnomalyError, CpuPathError,
            ImportError) as e:  # ImportError: an optional extra the command needs, named
        if args.debug:
            raise
        print(f"convnetpy {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
