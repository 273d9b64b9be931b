"""GoogLeNet / Inception v1 (Szegedy et al. 2014) in torchvision's layout: BasicConv2d
(conv without bias + BatchNorm(eps=0.001) + ReLU), Inception blocks whose four branches are
concatenated on channels, optional auxiliary classifiers. 6,624,904 parameters for 1000
classes without the auxiliary classifiers.

NOTE: like torchvision, the "5x5" branch uses a 3x3 convolution (a known quirk of the
reference implementation that the published parameter count includes).
"""

from __future__ import annotations

from .. import functional as F
from ..nn import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    Sequential,
    init,
)
from ..tensor import cat


class BasicConv2d(Module):
    """Conv (no bias) + BatchNorm + ReLU.

    Shape:
        (N, C_in, H, W) -> (N, C_out, H_out, W_out), as the convolution

    >>> import convnetpy as cp
    >>> BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)(cp.zeros(1, 3, 224, 224)).shape
    (1, 64, 112, 112)
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Inception(Module):
    """Four parallel branches (1x1; 1x1 -> 3x3; 1x1 -> 3x3; 3x3 max pool -> 1x1),
    concatenated on channels; the 1x1 convolutions cut channels before the expensive ones.

    Shape:
        (N, C_in, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)

    >>> import convnetpy as cp
    >>> Inception(192, 64, 96, 128, 16, 32, 32)(cp.zeros(1, 192, 28, 28)).shape
    (1, 256, 28, 28)
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int,
                 ch5x5red: int, ch5x5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                  BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                  BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = Sequential(MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                  BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x):
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(Module):
    """Auxiliary classifier: 4x4 average pool, 1x1 conv to 128, 1024-unit FC, classifier.

    Shape:
        (N, C_in, 14, 14) -> (N, num_classes)

    >>> import convnetpy as cp
    >>> InceptionAux(512, 10)(cp.zeros(1, 512, 14, 14)).shape
    (1, 10)
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = Linear(2048, 1024)
        self.fc2 = Linear(1024, num_classes)
        self.dropout = Dropout(p=dropout)

    def forward(self, x):
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4))).flatten(1)
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class GoogLeNet(Module):
    """GoogLeNet with torchvision's attribute names. In training mode with
    ``aux_logits=True`` the forward returns (logits, aux2, aux1), as torchvision does.

    Shape:
        (N, 3, 224, 224) -> (N, num_classes)

    >>> sum(p.numel() for p in GoogLeNet().parameters())
    6624904
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False, in_channels: int = 3,
                 dropout: float = 0.2, dropout_aux: float = 0.7) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.flatten = Flatten()
        self.dropout = Dropout(p=dropout)
        self.fc = Linear(1024, num_classes)
        for m in self.modules():  # torchvision: truncated normal(0, 0.01) on conv and linear
            if isinstance(m, (Conv2d, Linear)):
                init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, BatchNorm2d):
                init.constant_(m.weight, 1)
                init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(self.flatten(self.avgpool(x))))
        if self.training and self.aux_logits:
            return x, aux2, aux1
        return x
