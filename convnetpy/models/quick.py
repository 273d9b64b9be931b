"""A small residual network for fast CIFAR-10 training on a CPU (the ``cifar10-quick``
preset): the ResNet-9 layout of the DAWNBench entries (prep conv, three conv-BN-ReLU-pool
stages, two residual blocks, global max pooling) at a fraction of the width."""

from __future__ import annotations

from .. import functional as F
from ..nn import BatchNorm2d, Conv2d, Linear, MaxPool2d, Module, ReLU, Sequential


def conv_bn(cin: int, cout: int, pool: bool = False) -> Sequential:
    layers = [Conv2d(cin, cout, 3, padding=1, bias=False), BatchNorm2d(cout), ReLU()]
    if pool:
        layers.append(MaxPool2d(2))
    return Sequential(*layers)


class Residual(Module):
    """x + f(x) with f two conv-BN-ReLU layers.

    Shape:
        (N, C, H, W) -> (N, C, H, W)

    >>> import convnetpy as cp
    >>> Residual(8)(cp.zeros(1, 8, 4, 4)).shape
    (1, 8, 4, 4)
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.res = Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x):
        return x + self.res(x)


class QuickNet(Module):
    """ResNet-9 layout with widths (w, 2w, 4w, 8w) for 32x32 input.

    Shape:
        (N, 3, 32, 32) -> (N, num_classes)

    >>> import convnetpy as cp
    >>> QuickNet(width=8)(cp.zeros(2, 3, 32, 32)).shape
    (2, 10)
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        w = width
        self.prep = conv_bn(in_channels, w)
        self.layer1 = Sequential(conv_bn(w, 2 * w, pool=True), Residual(2 * w))
        self.layer2 = conv_bn(2 * w, 4 * w, pool=True)
        self.layer3 = Sequential(conv_bn(4 * w, 8 * w, pool=True), Residual(8 * w))
        self.fc = Linear(8 * w, num_classes, bias=False)
        self.scale = 0.125  # the DAWNBench logit scale: keeps early softmax outputs soft

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.fc(x) * self.scale
