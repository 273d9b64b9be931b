"""The fast CIFAR-10 recipe, in one file: airbench94's network (Keller Jordan, 2024) and the
``cifar10-fast`` / ``cifar10-quick`` presets that train it on a CPU.

The network (``AirbenchNet``), for 32x32 images:

    whiten   Conv2d(3, 24, kernel_size=2), then act                  -> 24 x 31 x 31
    block1   conv 3x3 -> max pool 2 -> BN -> act -> conv 3x3 -> BN -> act     -> w1 x 15 x 15
    block2   the same                                                       -> w2 x 7 x 7
    block3   the same                                                       -> w3 x 3 x 3
    head     max pool 3 -> flatten -> Linear(w3, classes, bias=False) -> x 1/9

(act: GELU in the presets, ReLU by default) and what the presets do with it, each a
building block of the library:

- ``init="whiten"`` (``nn.init.whiten_``): the first conv's 24 filters are the
  eigenvectors of the covariance of the training images' 2x2 patches, scaled to unit
  variance, and their negatives; the weight stays frozen, so the network starts from
  decorrelated pixels and never spends steps learning them.
- ``nn.init.dirac_``: each 3x3 conv starts as the identity on its first channels.
- batch norm with no learned scale (its weight frozen at 1), eps 1e-12 and, in the presets,
  running statistics that follow the batches closely (``bn_momentum=0.4``).
- ``bn_bias_lr_factor=64``: batch norm's biases learn 64 times faster than the rest, with
  the same absolute weight decay (the learning rate times the decay is kept).
- Nesterov SGD (momentum 0.85) at batch 1000, ``schedule="triangle"``: the learning rate
  rises from a fifth to its peak over the first 23% of the run, then falls to 7% of it
  (``pct_start``, ``lr_start_factor``, ``lr_end_factor``).
- ``optim.Lookahead`` every 5 steps (``lookahead_k``), its share ramped by
  ``optim.cubic_alpha`` from 1 down to 1 - 0.95^5 (``lookahead_ramp``); the run ends on
  the slow weights.
- label smoothing 0.2; flip + 2-pixel translation (reflected borders) as augmentation;
  ``tta="flip-translate"`` (``nn.TTA``) for the final validation.

airbench trains this in 10 epochs to 94% on CIFAR-10's test set. What differs here: flips
are random rather than alternating, the whitening conv's bias stays trainable throughout
(airbench freezes it after 3 epochs), and a 5,000-image validation split is held out of
the training set. The measured accuracy, time and the comparisons are in the README's
presets section.

>>> import convnetpy as cp
>>> net = AirbenchNet(widths=(16, 32, 32))
>>> net(cp.zeros(2, 3, 32, 32)).shape
(2, 10)
>>> net.whiten.out_channels      # 2 * 3 channels * 2 * 2: eigenvectors and their negatives
24
"""

from __future__ import annotations

from typing import Any, Sequence

from ..nn import (
    GELU,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    ReLU,
    Sequential,
    init,
)


def _conv(cin: int, cout: int, dirac: bool) -> Conv2d:
    conv = Conv2d(cin, cout, 3, padding=1, bias=False)
    if dirac:
        kept = conv.weight.data[cin:].copy()  # the default draw, for filters past the identity
        init.dirac_(conv.weight)
        conv.weight.data[cin:] = kept
    return conv


def _activation(name: str) -> Module:
    if name not in ("gelu", "relu"):
        raise ValueError(f"AirbenchNet: activation must be 'gelu' or 'relu', got {name!r}")
    return GELU() if name == "gelu" else ReLU()


def _norm(channels: int, momentum: float) -> BatchNorm2d:
    bn = BatchNorm2d(channels, eps=1e-12, momentum=momentum)
    bn.weight.requires_grad_(False)  # no learned scale, as airbench
    return bn


class ConvGroup(Module):
    """conv -> max pool 2 -> BN -> act -> conv -> BN -> act (airbench's block; act is
    ReLU or GELU).

    Shape:
        (N, C_in, H, W) -> (N, C_out, floor(H / 2), floor(W / 2))

    >>> import convnetpy as cp
    >>> ConvGroup(3, 8)(cp.zeros(1, 3, 15, 15)).shape
    (1, 8, 7, 7)
    """

    def __init__(self, cin: int, cout: int, bn_momentum: float = 0.1, dirac: bool = True,
                 activation: str = "relu") -> None:
        super().__init__()
        self.conv1, self.pool = _conv(cin, cout, dirac), MaxPool2d(2)
        self.norm1, self.conv2 = _norm(cout, bn_momentum), _conv(cout, cout, dirac)
        self.norm2, self.activ = _norm(cout, bn_momentum), _activation(activation)

    def forward(self, x):
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class AirbenchNet(Module):
    """airbench94's network (see the module docstring) with block widths ``widths``; the
    whitening conv has 2 * C * 2 * 2 filters (``init="whiten"`` in a TrainConfig sets them
    from the data and freezes them); ``dirac`` starts the 3x3 convs as the identity;
    ``activation`` is "relu" or "gelu".

    Shape:
        (N, C, 32, 32) -> (N, num_classes)

    >>> sum(p.numel() for p in AirbenchNet().parameters())
    1972792
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3,
                 widths: Sequence[int] = (64, 256, 256), bn_momentum: float = 0.1,
                 scale: float = 1 / 9, dirac: bool = True, activation: str = "relu") -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"AirbenchNet: widths must be three positive block widths, got "
                             f"{widths}")
        self.whiten = Conv2d(in_channels, 2 * in_channels * 4, kernel_size=2, bias=True)
        self.whiten.bias.data[...] = 0
        w1, w2, w3 = widths
        groups = [ConvGroup(a, b, bn_momentum, dirac, activation)
                  for a, b in ((self.whiten.out_channels, w1), (w1, w2), (w2, w3))]
        self.layers = Sequential(_activation(activation), *groups, MaxPool2d(3), Flatten())
        self.head = Linear(w3, num_classes, bias=False)
        self.scale = float(scale)  # small logits at the start keep the softmax soft

    def forward(self, x):
        return self.head(self.layers(self.whiten(x))) * self.scale


# The presets (train/config.py lists them with the others). Batch 1000, 45 steps an epoch
# on the 45,000 training images left after the validation split.
RECIPE: dict[str, Any] = dict(
    model="airbench", data="cifar10", batch_size=1000, optimizer="sgd", momentum=0.85,
    nesterov=True, schedule="triangle", pct_start=0.2, lr_start_factor=0.2,
    label_smoothing=0.2, augment=["flip", "translate"], crop_padding=2, init="whiten",
    bn_bias_lr_factor=64.0, val_fraction=0.1, tta="flip-translate")
# airbench94's other parts, compared one by one on cifar10-quick (README): GELU, batch norm
# statistics that follow the batches closely (PyTorch momentum 0.4), the learning rate up
# over 23% of the run and down to 7% of its peak, and Lookahead every 5 steps whose share
# falls from 1 to 1 - 0.95^5 as the cube of the run's progress, ending on its slow weights
AIRBENCH94 = dict(RECIPE, pct_start=0.23, lr_end_factor=0.07, lookahead_k=5,
                  lookahead_alpha=1 - 0.95 ** 5, lookahead_ramp=True)
NET94 = {"activation": "gelu", "bn_momentum": 0.4}

PRESETS: dict[str, dict[str, Any]] = {
    "cifar10-fast": dict(AIRBENCH94, epochs=10, lr=1.27, weight_decay=1.5e-3,
                         model_kwargs={"widths": [64, 256, 256], **NET94}),
    "cifar10-quick": dict(AIRBENCH94, epochs=4, lr=1.27, weight_decay=1.5e-3,
                          model_kwargs={"widths": [32, 64, 128], **NET94}),
    # the same network and recipe on MNIST's 28x28 digits (8 whitening filters for one
    # channel), at batch 500; no flips, in training or test-time augmentation: a mirrored
    # digit is another symbol
    "mnist-fast": dict(AIRBENCH94, data="mnist", augment=["translate"], tta="none", epochs=6,
                       batch_size=500, lr=0.64, weight_decay=1.5e-3,
                       model_kwargs={"widths": [32, 64, 128], **NET94}),
}

