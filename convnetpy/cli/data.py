"""``convnetpy data download {mnist,cifar10} [--root DIR]``: the official archives into the
cache (or DIR), checked against their published checksums, resumed when interrupted."""

from __future__ import annotations

HELP = "download MNIST or CIFAR-10 (the official files, checksummed) into the data cache"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    d = sub.add_parser("download", help="download a dataset's official files")
    d.add_argument("dataset", choices=("mnist", "cifar10"))
    d.add_argument("--root", metavar="DIR",
                   help="where to put the files (default: $CONVNETPY_DATA/DATASET, "
                        "~/.cache/convnetpy/DATASET; a mirror: $CONVNETPY_DATA_MIRROR)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..data import download_cifar10, download_mnist

    fetch = download_mnist if args.dataset == "mnist" else download_cifar10
    where = fetch(args.root, progress=not args.quiet)
    print(f"{args.dataset}: the files are in {where.resolve()}")
    spec = args.dataset if args.root is None else f"{args.dataset}:{where}"
    print(f"train on them with: convnetpy train --data {spec}")
    return 0
