"""``convnetpy calc conv|pool``: one layer's output volume and parameters, with the
arithmetic written out (exit code 1 when the setting does not fit)."""

from __future__ import annotations

HELP = ("output volume and parameters of one CONV or POOL layer, with the arithmetic (exit 1 "
        "if it does not fit)")


def add_arguments(p) -> None:
    p.add_argument("layer", choices=["conv", "pool"])
    p.add_argument("--input", required=True, help="W1xH1xD1, e.g. 32x32x3")
    p.add_argument("--filters", type=int, help="K, the number of filters (conv)")
    p.add_argument("--kernel", type=int, required=True, help="F, the filter size")
    p.add_argument("--stride", type=int, default=None, help="S (default 1 for conv, F for pool)")
    p.add_argument("--pad", type=int, default=0, help="P, zero-padding (default 0)")


def run(args) -> int:
    from ..analysis import conv_calc, parse_volume, pool_calc
    from .common import usage_error

    if args.layer == "conv" and args.filters is None:
        raise usage_error("calc conv needs --filters K")
    w, h, d = parse_volume(args.input)
    if args.layer == "conv":
        res = conv_calc(w, h, d, args.filters, args.kernel, args.stride or 1, args.pad)
    else:
        res = pool_calc(w, h, d, args.kernel, args.stride, args.pad)
    print(res.text)
    return 0 if res.fits else 1
