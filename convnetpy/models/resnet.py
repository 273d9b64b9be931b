"""ResNets (He et al. 2015): ResNet-18/34/50 for ImageNet in torchvision's layout, and the
CIFAR-10 ResNet-20/32/44/56/110 of the paper's section 4.2 with option A shortcuts
(parameter-free: subsample by 2 and zero-pad the new channels). ResNet-18 has 11,689,512
parameters, ResNet-50 25,557,032 (1000 classes); ResNet-20 (CIFAR) 269,722."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from ..nn import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    Sequential,
    init,
)
from ..tensor import Tensor, cat, zeros


def conv3x3(cin: int, cout: int, stride: int = 1) -> Conv2d:
    return Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> Conv2d:
    return Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(Module):
    """Two 3x3 convs with BatchNorm; the input is added back (through ``downsample`` when
    the shape changes).

    Shape:
        (N, C_in, H, W) -> (N, planes, H/stride, W/stride)

    >>> import convnetpy as cp
    >>> BasicBlock(64, 128, 2, conv1x1(64, 128, 2))(cp.zeros(1, 64, 56, 56)).shape
    (1, 128, 28, 28)
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class Bottleneck(Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), with BatchNorm; stride on the 3x3 (torchvision's
    "ResNet v1.5").

    Shape:
        (N, C_in, H, W) -> (N, 4*planes, H/stride, W/stride)

    >>> import convnetpy as cp
    >>> Bottleneck(256, 64)(cp.zeros(1, 256, 14, 14)).shape
    (1, 256, 14, 14)
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = BatchNorm2d(planes * self.expansion)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet(Module):
    """The ImageNet ResNet with torchvision's attribute names (conv1, bn1, maxpool,
    layer1..4, avgpool, fc) and initialisation.

    Shape:
        (N, 3, 224, 224) -> (N, num_classes)

    >>> sum(p.numel() for p in ResNet(BasicBlock, [2, 2, 2, 2]).parameters())
    11689512
    """

    def __init__(self, block: Any, layers: list[int], num_classes: int = 1000,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = BatchNorm2d(64)
        self.maxpool = MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.flatten = Flatten()
        self.fc = Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, BatchNorm2d):
                init.constant_(m.weight, 1)
                init.constant_(m.bias, 0)

    def _make_layer(self, block: Any, planes: int, blocks: int, stride: int = 1) -> Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                    BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


class ShortcutA(Module):
    """Option A shortcut: take every other pixel and zero-pad the new channels (no
    parameters).

    Shape:
        (N, C, H, W) -> (N, C + 2*pad, H/2, W/2)

    >>> import convnetpy as cp
    >>> ShortcutA(8)(cp.zeros(1, 16, 32, 32)).shape
    (1, 32, 16, 16)
    """

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        sub = x[:, :, ::2, ::2]
        z = zeros(sub.shape[0], self.pad, *sub.shape[2:], dtype=sub.dtype)
        return cat([z, sub, z], dim=1)

    def extra_repr(self) -> str:
        return f"pad={self.pad}"


class CifarBasicBlock(Module):
    """The CIFAR ResNet's basic block with an option A shortcut when the shape changes.

    Shape:
        (N, C_in, H, W) -> (N, planes, H/stride, W/stride)

    >>> import convnetpy as cp
    >>> CifarBasicBlock(16, 32, 2)(cp.zeros(1, 16, 32, 32)).shape
    (1, 32, 16, 16)
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = BatchNorm2d(planes)
        self.shortcut = Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = ShortcutA(planes // 4)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(Module):
    """ResNet-(6n+2) for 32x32 input: a 3x3 conv to 16 maps, three stages of n blocks (16,
    32, 64 maps, the last two starting with stride 2), global average pooling, a linear
    classifier. Kaiming-normal initialisation of conv and linear weights.

    Shape:
        (N, 3, 32, 32) -> (N, num_classes)

    >>> sum(p.numel() for p in CifarResNet(20).parameters())
    269722
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"a CIFAR ResNet has depth 6n+2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = conv3x3(in_channels, 16)
        self.bn1 = BatchNorm2d(16)
        stages, cin = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(CifarBasicBlock(cin, planes, stride if i == 0 else 1))
                cin = planes
            stages.append(Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.flatten = Flatten()
        self.linear = Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (Conv2d, Linear)):
                init.kaiming_normal_(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(self.flatten(F.adaptive_avg_pool2d(out, 1)))
