"""``convnetpy summary MODEL``: the lecture's arithmetic for every layer of a model."""

from __future__ import annotations

HELP = ("per-layer shapes, formulas, parameters, MACs and memory and receptive fields of a "
        "model")


def add_arguments(p) -> None:
    p.add_argument("model", help="a zoo name (see `convnetpy models`) or "
                                 "path/to/file.py:factory")
    p.add_argument("--input", help="CxHxW, e.g. 3x224x224 (default: the zoo model's)")
    p.add_argument("--batch", type=int, default=1, help="batch size N (default 1)")
    p.add_argument("--format", choices=["text", "md", "csv", "json"], default="text")
    p.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default="sgd",
                   help="optimizer state in the training-memory estimate")
    p.add_argument("--num-classes", type=int, default=None)


def run(args) -> int:
    from ..analysis import summary
    from .common import load_model, parse_input, usage_error

    if args.batch < 1:
        raise usage_error("--batch must be at least 1")
    model, default = load_model(args.model, args.num_classes)
    chw = parse_input(args.input) if args.input else default
    if chw is None:
        raise ValueError("--input CxHxW is required for a model loaded from a file")
    s = summary(model, (args.batch,) + tuple(chw), optimizer=args.optimizer)
    print({"text": s.to_text, "md": s.to_markdown, "csv": s.to_csv,
           "json": s.to_json}[args.format]())
    return 0
