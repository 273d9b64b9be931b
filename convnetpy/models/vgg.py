"""VGG-11/13/16/19 (Simonyan & Zisserman 2014), with and without batch norm, in torchvision's
layout and initialisation. VGG-16 has 138,357,544 parameters for 1000 classes."""

from __future__ import annotations

from ..nn import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    ReLU,
    Sequential,
    init,
)

CFGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}


def make_layers(cfg: list, batch_norm: bool = False, in_channels: int = 3) -> Sequential:
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(Conv2d(in_channels, v, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(BatchNorm2d(v))
            layers.append(ReLU(inplace=True))
            in_channels = v
    return Sequential(*layers)


class VGG(Module):
    """VGG with torchvision's attribute names (features, avgpool, classifier).

    Shape:
        (N, 3, 224, 224) -> (N, num_classes)

    >>> net = VGG(make_layers(CFGS[16]), init_weights=False)
    >>> sum(p.numel() for p in net.parameters())
    138357544
    """

    def __init__(self, features: Sequential, num_classes: int = 1000, init_weights: bool = True,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.features = features
        self.avgpool = AdaptiveAvgPool2d((7, 7))
        self.classifier = Sequential(
            Linear(512 * 7 * 7, 4096), ReLU(True), Dropout(p=dropout),
            Linear(4096, 4096), ReLU(True), Dropout(p=dropout),
            Linear(4096, num_classes),
        )
        self.flatten = Flatten()
        if init_weights:
            for m in self.modules():
                if isinstance(m, Conv2d):
                    init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        init.constant_(m.bias, 0)
                elif isinstance(m, BatchNorm2d):
                    init.constant_(m.weight, 1)
                    init.constant_(m.bias, 0)
                elif isinstance(m, Linear):
                    init.normal_(m.weight, 0, 0.01)
                    init.constant_(m.bias, 0)

    def forward(self, x):
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


def vgg(depth: int, batch_norm: bool = False, num_classes: int = 1000,
        in_channels: int = 3) -> VGG:
    if depth not in CFGS:
        raise ValueError(f"VGG depth must be one of {sorted(CFGS)}, got {depth}")
    return VGG(make_layers(CFGS[depth], batch_norm, in_channels), num_classes)
