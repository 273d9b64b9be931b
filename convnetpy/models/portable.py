"""Networks written once against a PyTorch-style namespace: called with
(convnetpy.nn, convnetpy.functional) or (torch.nn, torch.nn.functional) they build the same
model with the same state_dict keys, so the two libraries can be compared on exactly the same
architecture (the parity tests and the benchmarks do). Nothing here imports torch.

>>> from convnetpy import nn
>>> sum(p.numel() for p in convnetjs_cifar10(nn).parameters())
22466
"""


def convnetjs_cifar10(nn, num_classes: int = 10, in_channels: int = 3):
    """The ConvNetJS CIFAR-10 demo network (Karpathy): three conv(5x5, pad 2) - ReLU -
    max-pool(2) stages with 16, 20 and 20 filters, then a linear classifier.

    Shape:
        (N, 3, 32, 32) -> (N, num_classes)
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 20, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 20, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 4 * 20, num_classes),
    )


def resnet20(nn, F, num_classes=10):
    """ResNet-20 for CIFAR with basic blocks, BatchNorm, identity shortcuts and 1x1
    projection shortcuts where the shape changes."""

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            cin, layers = 16, []
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                blocks = []
                for b in range(3):
                    blocks.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                    cin = cout
                layers.append(nn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = layers
            self.linear = nn.Linear(64, num_classes)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer3(self.layer2(self.layer1(out)))
            out = F.adaptive_avg_pool2d(out, 1).flatten(1)
            return self.linear(out)

    return ResNet()


def airbench(nn, widths=(64, 256, 256), num_classes: int = 10):
    """The layers and shapes of ``models.AirbenchNet`` with GELU, as the ``cifar10-fast``
    preset trains it (``cifar10-quick``: widths 32/64/128), for timing it against PyTorch;
    the whitening and identity initialisations, the frozen weights and the 1/9 logit scale
    are the training recipe's and are left out.

    Shape:
        (N, 3, 32, 32) -> (N, num_classes)
    """
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2),
                nn.BatchNorm2d(cout, eps=1e-12, momentum=0.4), nn.GELU(),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout, eps=1e-12, momentum=0.4), nn.GELU()]

    w1, w2, w3 = widths
    return nn.Sequential(nn.Conv2d(3, 24, 2), nn.GELU(), *block(24, w1), *block(w1, w2),
                         *block(w2, w3), nn.MaxPool2d(3), nn.Flatten(),
                         nn.Linear(w3, num_classes, bias=False))
