"""``convnetpy train``: a preset, or any TrainConfig field, through ``convnetpy.train.fit``."""

from __future__ import annotations

import contextlib
import functools
import json

HELP = "train a model (no options: LeNet-5 on the bundled digits)"


# the recipe options a run's TrainConfig takes from the command line (besides --set)
RECIPE_OPTIONS = ("model", "data", "epochs", "batch_size", "lr", "out")


def add_recipe_arguments(p, training: bool = True) -> None:
    """The options that describe a run, shared by ``train`` and ``lr-find``: --preset,
    --model, --data, --batch-size, --out and --set; with ``training`` also --epochs, --lr
    and --resume (lr-find sweeps the rate, trains no epochs and starts nothing again)."""
    from ..train.config import PRESETS

    p.add_argument("--preset", help="a named recipe: " + ", ".join(
        f"{name} (default)" if name == "digits-lenet5" else name for name in PRESETS))
    p.add_argument("--model", help="a zoo name (convnetpy models)")
    p.add_argument("--data", help="digits | mnist[:PATH] | cifar10[:PATH] | folder:PATH | "
                                  "synthetic[:N]")
    if training:
        p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, dest="batch_size")
    if training:
        p.add_argument("--lr", type=float)
    p.add_argument("--out", help="parent folder of the run folders (default runs/)" if training
                   else "parent folder of the lr-find-<time> folder (default runs/)")
    if training:
        p.add_argument("--resume", metavar="RUN_OR_CKPT",
                       help="continue a run exactly from its newest checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any TrainConfig field, e.g. --set augment='[\"crop\",\"flip\"]'")


def add_arguments(p) -> None:
    add_recipe_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--distributed", choices=("auto", "none", "mpi"),
                   help="several processes: auto (default; data-parallel over MPI when "
                        "started by mpiexec -n N), none (this process alone), mpi")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="write TensorBoard event files into DIR/<run id> (needs the "
                        "tensorboard extra: pip install \"convnetpy[tensorboard]\")")
    p.add_argument("--detect-anomaly", action="store_true", dest="detect_anomaly",
                   help="stop at the first op whose output or gradient is NaN or infinite, "
                        "naming the op and its layer (slower: every op is checked)")
    p.add_argument("--dashboard", action="store_true",
                   help="serve a live view of the run in the browser (prints the URL)")
    p.add_argument("--port", type=int, default=8765, help="dashboard port (default 8765)")
    p.add_argument("--host", default="127.0.0.1",
                   help="dashboard address (default 127.0.0.1; another needs --allow-remote)")
    p.add_argument("--allow-remote", action="store_true",
                   help="let the dashboard listen on a non-local address")


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def set_values(args) -> dict:
    """The ``--set KEY=VALUE`` pairs as a dict (values read as JSON, else as text)."""
    sets = {}
    for item in args.set:
        key, sep, val = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        sets[key.strip().replace("-", "_")] = _parse_value(val)
    return sets


def config_from_args(args, sets: dict | None = None):
    """The TrainConfig the options describe: the preset (default digits-lenet5), the
    recipe options given, then ``sets`` (default: the --set pairs) over them."""
    from ..train import TrainConfig, preset

    values = preset(args.preset or "digits-lenet5")
    for key in RECIPE_OPTIONS:
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    return TrainConfig.from_dict({**values, **(set_values(args) if sets is None else sets)})


def run(args) -> int:
    from ..autograd import detect_anomaly
    from ..train import fit

    sets = set_values(args)
    if args.quiet:
        sets["progress"] = False
    if args.distributed:
        sets["distributed"] = args.distributed
    if args.tensorboard is not None:
        from ..train.tensorboard import summary_writer_class

        try:  # without tensorboardX: the install hint as an error line, before any run folder
            summary_writer_class()
        except ImportError as e:
            raise ValueError(str(e)) from None
        sets["tensorboard"] = args.tensorboard
    watch = None
    if args.dashboard:
        from ..dashboard import watcher

        watch = watcher(args.host, args.port, args.allow_remote)
    if args.resume:
        given = [k for k in ("preset",) + RECIPE_OPTIONS if getattr(args, k) is not None]
        if given:
            raise ValueError("--resume continues a run with its own settings; drop "
                             + ", ".join("--" + k.replace("_", "-") for k in given))
        start = functools.partial(fit, resume=args.resume, overrides=sets, watch=watch)
    else:
        start = functools.partial(fit, config=config_from_args(args, sets), watch=watch)
    with detect_anomaly() if args.detect_anomaly else contextlib.nullcontext():
        result = start()
    if result["rank"] != 0:
        return 0  # rank 0 reports for the run
    acc = result["val_acc"]
    shown = "n/a (no epoch finished)" if acc is None else f"{acc:.2%}"
    print(f"validation accuracy: {shown} (best {max(result['best_val_acc'], 0):.2%}); "
          f"status: {result['status']}; run folder: {result['run_dir']}")
    return 0
