"""``convnetpy models``: the model zoo, one line each."""

from __future__ import annotations

HELP = "list the model zoo"


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    from .. import models

    for name in models.list_models():
        c, h, w = models.default_input_size(name)
        print(f"{name:18s} {f'{c}x{h}x{w}':10s} {models.describe(name)}")
    return 0
