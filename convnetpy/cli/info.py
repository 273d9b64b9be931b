"""``convnetpy info``: the CPU, its features, the compute path chosen and why, threads, BLAS
and versions."""

from __future__ import annotations

HELP = "the CPU, its features, the compute path chosen and why, threads, BLAS and versions"


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print it as JSON")


def run(args) -> int:
    from ..backend import info

    report = info.report()
    print(info.to_json(report) if args.json else info.format_report(report))
    return 0
