"""The case-study networks: LeNet-5, AlexNet, VGG, GoogLeNet, ResNet and the ConvNetJS
CIFAR-10 network, with torchvision's layouts and attribute names (so state_dict keys line up)
and the published parameter counts.

>>> from convnetpy import models
>>> net = models.get("resnet20", num_classes=10)
>>> sum(p.numel() for p in net.parameters())
269722
"""

from __future__ import annotations

from typing import Any, Callable

from ..nn import Module
from .airbench import AirbenchNet
from .alexnet import AlexNet
from .googlenet import GoogLeNet
from .lenet import LeNet5, LeNet5Classic
from .quick import QuickNet
from .resnet import BasicBlock, Bottleneck, CifarResNet, ResNet
from .vgg import VGG, vgg


def convnetjs_cifar10(num_classes: int = 10, in_channels: int = 3) -> Module:
    """The ConvNetJS CIFAR-10 demo network (one definition, in ``portable``).

    >>> sum(p.numel() for p in convnetjs_cifar10().parameters())
    22466
    """
    from .. import nn
    from .portable import convnetjs_cifar10 as build

    return build(nn, num_classes, in_channels)

# name -> (factory(num_classes, in_channels, **kw), default classes, input size C x H x W)
_REGISTRY: dict[str, tuple[Callable[..., Module], int, tuple[int, int, int], str]] = {}


def register(name: str, classes: int, input_size: tuple[int, int, int], doc: str):
    def wrap(factory):
        _REGISTRY[name] = (factory, classes, input_size, doc)
        return factory
    return wrap


register("lenet5", 10, (1, 32, 32), "LeNet-5, modern variant (ReLU, max pool)")(
    lambda nc, ic, **kw: LeNet5(nc, ic, **kw))
register("lenet5_classic", 10, (1, 32, 32), "LeNet-5 as in LeCun et al. 1998")(
    lambda nc, ic, **kw: LeNet5Classic(nc, ic, **kw))
register("alexnet", 1000, (3, 224, 224), "AlexNet, torchvision layout")(
    lambda nc, ic, **kw: AlexNet(nc, ic, **kw))
for _d in (11, 13, 16, 19):
    for _bn in (False, True):
        register(f"vgg{_d}{'_bn' if _bn else ''}", 1000, (3, 224, 224),
                 f"VGG-{_d}{' with batch norm' if _bn else ''}")(
            lambda nc, ic, _d=_d, _bn=_bn, **kw: vgg(_d, _bn, nc, ic))
register("googlenet", 1000, (3, 224, 224), "GoogLeNet (Inception v1), torchvision layout")(
    lambda nc, ic, **kw: GoogLeNet(nc, in_channels=ic, **kw))
for _name, _block, _layers in (("resnet18", BasicBlock, [2, 2, 2, 2]),
                               ("resnet34", BasicBlock, [3, 4, 6, 3]),
                               ("resnet50", Bottleneck, [3, 4, 6, 3])):
    register(_name, 1000, (3, 224, 224), f"ResNet-{_name[6:]} for ImageNet")(
        lambda nc, ic, _b=_block, _l=_layers, **kw: ResNet(_b, _l, nc, ic))
for _depth in (20, 32, 44, 56, 110):
    register(f"resnet{_depth}", 10, (3, 32, 32), f"ResNet-{_depth} for CIFAR (option A)")(
        lambda nc, ic, _d=_depth, **kw: CifarResNet(_d, nc, ic))
register("convnetjs_cifar10", 10, (3, 32, 32), "the ConvNetJS CIFAR-10 demo network")(
    lambda nc, ic, **kw: convnetjs_cifar10(nc, ic))
register("cifar_quick", 10, (3, 32, 32), "ResNet-9 layout, narrow: fast CIFAR-10 on a CPU")(
    lambda nc, ic, **kw: QuickNet(nc, ic, **kw))
register("airbench", 10, (3, 32, 32), "airbench94's network: whitened first conv, fast "
         "CIFAR-10")(lambda nc, ic, **kw: AirbenchNet(nc, ic, **kw))


def list_models() -> list[str]:
    """The names ``get`` accepts."""
    return sorted(_REGISTRY)


def default_input_size(name: str) -> tuple[int, int, int]:
    """The (C, H, W) input a zoo model was designed for."""
    return _entry(name)[2]


def describe(name: str) -> str:
    return _entry(name)[3]


def _entry(name: str):
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]


def get(name: str, num_classes: int | None = None, in_channels: int | None = None,
        **kwargs: Any) -> Module:
    """Build zoo model ``name`` (see ``list_models()``); defaults: its published number of
    classes and input channels."""
    factory, classes, size, _ = _entry(name)
    return factory(classes if num_classes is None else num_classes,
                   size[0] if in_channels is None else in_channels, **kwargs)


__all__ = ["get", "list_models", "default_input_size", "describe", "LeNet5", "LeNet5Classic",
           "AlexNet", "VGG", "vgg", "GoogLeNet", "ResNet", "BasicBlock", "Bottleneck",
           "CifarResNet", "convnetjs_cifar10", "QuickNet"]
