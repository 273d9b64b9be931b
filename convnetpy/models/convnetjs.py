"""The ConvNetJS CIFAR-10 demo network (Karpathy): three conv(5x5, pad 2) - ReLU -
max-pool(2) stages with 16, 20 and 20 filters, then a 10-way linear classifier."""

from __future__ import annotations

from ..nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential


def convnetjs_cifar10(num_classes: int = 10, in_channels: int = 3) -> Sequential:
    """Shape:
        (N, 3, 32, 32) -> (N, num_classes)

    >>> sum(p.numel() for p in convnetjs_cifar10().parameters())
    22466
    """
    return Sequential(
        Conv2d(in_channels, 16, 5, stride=1, padding=2), ReLU(), MaxPool2d(2, stride=2),
        Conv2d(16, 20, 5, stride=1, padding=2), ReLU(), MaxPool2d(2, stride=2),
        Conv2d(20, 20, 5, stride=1, padding=2), ReLU(), MaxPool2d(2, stride=2),
        Flatten(), Linear(4 * 4 * 20, num_classes),
    )
