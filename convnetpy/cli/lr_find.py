"""``convnetpy lr-find``: the learning-rate range test of a training recipe (train's options),
through ``convnetpy.train.lr_find_config``; prints the suggested rate and the train command
that uses it, and writes lr_find.json and lr_find.png."""

from __future__ import annotations

import shlex

HELP = "learning-rate range test: a suggested --lr for a recipe (train's options)"


def add_arguments(p) -> None:
    from .train import add_recipe_arguments

    add_recipe_arguments(p, training=False)
    p.add_argument("--start-lr", type=float, default=1e-7, dest="start_lr",
                   help="the first rate of the sweep (default 1e-7)")
    p.add_argument("--end-lr", type=float, default=10.0, dest="end_lr",
                   help="the last rate (default 10; the sweep stops early if the loss "
                        "diverges)")
    p.add_argument("--steps", type=int, default=200,
                   help="training steps, one per rate, rates spaced evenly on a log scale "
                        "(default 200; at least 10)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="write lr_find.json and lr_find.png into this folder (default: a "
                        "new lr-find-<time> folder under --out)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress lines, only the result")


def _train_command(args, lr: float) -> str:
    """The ``convnetpy train`` command of the same recipe at rate ``lr``."""
    words = ["convnetpy", "train"]
    for key in ("preset", "model", "data", "batch_size", "out"):
        if getattr(args, key) is not None:
            words += ["--" + key.replace("_", "-"), str(getattr(args, key))]
    for item in args.set:
        words += ["--set", item]
    return shlex.join(words + ["--lr", f"{lr:.3g}"])


def run(args) -> int:
    from ..train.lr_find import check_range, lr_find_config, new_output_dir, write
    from .train import config_from_args

    check_range(args.start_lr, args.end_lr, args.steps, ("--start-lr", "--end-lr", "--steps"))
    cfg = config_from_args(args)
    log = (lambda line: None) if args.quiet else print
    result = lr_find_config(cfg, steps=args.steps, start_lr=args.start_lr, end_lr=args.end_lr,
                            log=log)
    folder = args.output or new_output_dir(cfg.out)
    files = write(result, folder)
    if result.stopped_early:
        print(f"stopped after {len(result.lrs)} of {args.steps} steps: {result.reason}")
    sug, low = result.suggested_lr, result.min_loss_lr
    if sug is None:
        print(f"no suggestion: the loss did not fall between {args.start_lr:g} and "
              f"{result.lrs[-1] if result.lrs else args.end_lr:g}; try more --steps, a "
              f"larger --end-lr, or check the data and the model")
    else:
        print(f"suggested lr: {sug:.3g} (the steepest fall of the smoothed loss; the lowest "
              f"loss is at {low:.3g}, and a tenth of that, {low / 10:.3g}, is the safer start "
              f"for a constant schedule)")
        print(f"train with it: {_train_command(args, sug)}")
    print("wrote " + ", ".join(files))
    return 0
