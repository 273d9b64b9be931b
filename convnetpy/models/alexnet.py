"""AlexNet in torchvision's layout (Krizhevsky et al. 2012, "one weird trick" variant).

NOTE the input-size discrepancy: the paper (and the CS231n notes) say 224x224 input with 96
11x11 filters at stride 4, but (224 - 11)/4 + 1 = 54.25 does not fit; 227x227 does:
(227 - 11)/4 + 1 = 55. torchvision's layout uses 64 filters with padding 2 on 224x224,
(224 + 2*2 - 11)/4 + 1 = 55.25, which floors to 55: the leftover is one column of padding,
so no input pixel is lost (the summary notes it). Parameters: 61,100,840 for 1000 classes.
"""

from __future__ import annotations

from ..nn import (
    AdaptiveAvgPool2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    ReLU,
    Sequential,
)


class AlexNet(Module):
    """AlexNet with torchvision's attribute names (features, avgpool, classifier).

    Shape:
        (N, 3, 224, 224) -> (N, num_classes)

    >>> sum(p.numel() for p in AlexNet().parameters())
    61100840
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.features = Sequential(
            Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2), ReLU(inplace=True),
            MaxPool2d(kernel_size=3, stride=2),
            Conv2d(64, 192, kernel_size=5, padding=2), ReLU(inplace=True),
            MaxPool2d(kernel_size=3, stride=2),
            Conv2d(192, 384, kernel_size=3, padding=1), ReLU(inplace=True),
            Conv2d(384, 256, kernel_size=3, padding=1), ReLU(inplace=True),
            Conv2d(256, 256, kernel_size=3, padding=1), ReLU(inplace=True),
            MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = AdaptiveAvgPool2d((6, 6))
        self.classifier = Sequential(
            Dropout(p=dropout), Linear(256 * 6 * 6, 4096), ReLU(inplace=True),
            Dropout(p=dropout), Linear(4096, 4096), ReLU(inplace=True),
            Linear(4096, num_classes),
        )
        self.flatten = Flatten()

    def forward(self, x):
        return self.classifier(self.flatten(self.avgpool(self.features(x))))
