"""LeNet-5: the classic network of LeCun et al. (1998) and the common modern variant.

The classic one keeps the paper's parts: scaled tanh (1.7159 tanh(2x/3)), trainable
subsampling (a 2x2 sum times a per-map coefficient plus a bias), C3's partial connection
table (each of the 16 maps sees 3, 4 or 6 of the 6 S2 maps), and Euclidean RBF output units;
it has 60,840 parameters. The modern variant (ReLU, max pooling, full connections, a linear
output) has 61,706.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..nn import (
    AvgPool2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    ModuleList,
    Parameter,
    ReLU,
    Sequential,
)
from ..tensor import cat

# LeCun et al. 1998, Table I: which S2 maps (columns 0..5) each C3 map (0..15) connects to
C3_TABLE = [(0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
            (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
            (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5), (0, 1, 2, 3, 4, 5)]


class ScaledTanh(Module):
    """LeCun's squashing function f(a) = 1.7159 tanh(2a/3).

    Shape:
        any shape -> the same shape

    >>> import convnetpy as cp
    >>> round(ScaledTanh()(cp.tensor([1.0])).item(), 3)   # chosen so that f(1) = 1
    1.0
    """

    def forward(self, x):
        return F.tanh(x * (2.0 / 3.0)) * 1.7159


class Subsampling(Module):
    """LeNet's S layers: the sum of each 2x2 block times a trainable coefficient per map,
    plus a trainable bias per map (2 parameters per map).

    Shape:
        (N, C, H, W) -> (N, C, H/2, W/2)

    >>> import convnetpy as cp
    >>> Subsampling(6)(cp.zeros(1, 6, 28, 28)).shape
    (1, 6, 14, 14)
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = AvgPool2d(2, divisor_override=1)  # the sum of each 2x2 block
        self.weight = Parameter(np.full(channels, 0.25, dtype=np.float32))
        self.bias = Parameter(np.zeros(channels, dtype=np.float32))

    def forward(self, x):
        c = self.weight.shape[0]
        return self.pool(x) * self.weight.reshape(1, c, 1, 1) + self.bias.reshape(1, c, 1, 1)


class PartialConv(Module):
    """C3: one 5x5 convolution per output map over its subset of the input maps.

    Shape:
        (N, 6, H, W) -> (N, 16, H-4, W-4)

    >>> import convnetpy as cp
    >>> sum(p.numel() for p in PartialConv().parameters())   # 1,516 as in the paper
    1516
    """

    def __init__(self, table=C3_TABLE, kernel_size: int = 5) -> None:
        super().__init__()
        self.table = [tuple(t) for t in table]
        self.convs = ModuleList(Conv2d(len(t), 1, kernel_size) for t in self.table)

    def forward(self, x):
        return cat([conv(x[:, list(t)]) for conv, t in zip(self.convs, self.table)], dim=1)


class RBFOutput(Module):
    """Euclidean radial basis units: y_i = -sum_j (x_j - w_ij)^2 (the paper's penalty, negated
    so that the largest output is the predicted class; feed it to cross-entropy).

    Shape:
        (N, in_features) -> (N, num_classes)

    >>> import convnetpy as cp
    >>> RBFOutput(84, 10)(cp.zeros(2, 84)).shape
    (2, 10)
    """

    def __init__(self, in_features: int = 84, num_classes: int = 10) -> None:
        super().__init__()
        from ..random import default_generator

        # the paper uses fixed +-1 bitmaps; random +-1 codes keep the classes apart
        codes = default_generator().choice([-1.0, 1.0], size=(num_classes, in_features))
        self.weight = Parameter(codes.astype(np.float32))

    def forward(self, x):
        diff = x.unsqueeze(1) - self.weight.unsqueeze(0)  # (N, K, D)
        return -(diff * diff).sum(dim=2)


class LeNet5Classic(Module):
    """LeNet-5 as in LeCun et al. (1998), for 32x32 single-channel input.

    Shape:
        (N, 1, 32, 32) -> (N, num_classes)

    >>> import convnetpy as cp
    >>> sum(p.numel() for p in LeNet5Classic().parameters())
    60840
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        table = C3_TABLE
        self.c1 = Conv2d(in_channels, 6, 5)
        self.s2 = Subsampling(6)
        self.c3 = PartialConv(table)
        self.s4 = Subsampling(16)
        self.c5 = Conv2d(16, 120, 5)
        self.f6 = Linear(120, 84)
        self.output = RBFOutput(84, num_classes)
        self.act = ScaledTanh()
        self.flatten = Flatten()

    def forward(self, x):
        x = self.act(self.s2(self.act(self.c1(x))))
        x = self.act(self.s4(self.act(self.c3(x))))
        x = self.act(self.c5(x))
        return self.output(self.act(self.f6(self.flatten(x))))


class LeNet5(Module):
    """The common modern LeNet-5: conv(6, 5x5) - ReLU - maxpool - conv(16, 5x5) - ReLU -
    maxpool - 120 - 84 - num_classes. For 28x28 input (MNIST) use ``padding=2``.

    Shape:
        (N, C, 32, 32) -> (N, num_classes)

    >>> import convnetpy as cp
    >>> sum(p.numel() for p in LeNet5().parameters())
    61706
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.features = Sequential(
            Conv2d(in_channels, 6, 5, padding=padding), ReLU(), MaxPool2d(2),
            Conv2d(6, 16, 5), ReLU(), MaxPool2d(2),
        )
        self.classifier = Sequential(
            Flatten(), Linear(16 * 5 * 5, 120), ReLU(), Linear(120, 84), ReLU(),
            Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
