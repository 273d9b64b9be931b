"""The model zoo: published parameter counts and MACs, the CS231n worked examples, torchvision
layouts (state_dict keys and shapes of twins written in torch), forward shapes."""

import numpy as np
import pytest
from conftest import needs_torch, zoo

import convnetpy as cp
from convnetpy import models

# published numbers: parameters (1000 classes, 224x224) and MACs as torchvision reports them
PUBLISHED = {
    "alexnet": (61_100_840, 0.714),
    "vgg16": (138_357_544, 15.47),
    "googlenet": (6_624_904, 1.498),
    "resnet18": (11_689_512, 1.814),
    "resnet50": (25_557_032, 4.089),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_params_and_macs(name):
    params, gmacs = PUBLISHED[name]
    s = cp.summary(zoo(name), (1, 3, 224, 224))
    assert s.total_params == params
    assert sum(p.numel() for p in zoo(name).parameters()) == params
    digits = len(str(gmacs).split(".")[1])
    assert round(s.total_macs / 1e9, digits) == gmacs


@pytest.mark.parametrize("name,params", [("resnet20", 269_722), ("lenet5", 61_706),
                                         ("lenet5_classic", 60_840),
                                         ("convnetjs_cifar10", 22_466)])
def test_small_model_params(name, params):
    assert sum(p.numel() for p in models.get(name).parameters()) == params


def test_cifar_resnet_depths():
    # 6n+2 layers; the paper's Table 6 gives 0.27M, 0.46M, 0.66M, 0.85M, 1.7M parameters
    for depth, millions in ((20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)):
        n = sum(p.numel() for p in models.get(f"resnet{depth}").parameters())
        assert round(n / 1e6, 2 if depth < 110 else 1) == millions
    with pytest.raises(ValueError, match="depth 6n\\+2"):
        models.CifarResNet(21)


def test_registry():
    names = models.list_models()
    for expected in ("lenet5", "lenet5_classic", "alexnet", "vgg11", "vgg19_bn", "googlenet",
                     "resnet18", "resnet34", "resnet50", "resnet20", "resnet110",
                     "convnetjs_cifar10"):
        assert expected in names
    net = models.get("resnet18", num_classes=7, in_channels=1)
    assert net.fc.out_features == 7 and net.conv1.in_channels == 1
    with pytest.raises(ValueError,
                       match="unknown model 'resnet9'; choose one of: airbench, alexnet"):
        models.get("resnet9")


@pytest.mark.parametrize("name", ["lenet5", "lenet5_classic", "convnetjs_cifar10", "resnet20",
                                  "googlenet", "alexnet", "resnet18"])
def test_forward_backward_shapes(name):
    cp.manual_seed(0)
    c, h, w = models.default_input_size(name)
    net = models.get(name, num_classes=5)
    x = cp.tensor(np.random.default_rng(0).standard_normal((2, c, h, w)).astype(np.float32))
    net.train()
    out = net(x)
    assert out.shape == (2, 5)
    cp.functional.cross_entropy(out, cp.tensor([0, 4])).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_googlenet_aux_logits_in_training():
    net = models.get("googlenet", num_classes=4, aux_logits=True)
    net.train()
    x = cp.zeros(2, 3, 224, 224)
    with cp.no_grad():
        out, aux2, aux1 = net(x)
        assert out.shape == aux1.shape == aux2.shape == (2, 4)
        net.eval()
        assert net(x).shape == (2, 4)


def test_lenet_classic_learns_a_step():
    cp.manual_seed(0)
    net = models.get("lenet5_classic")
    x = cp.tensor(np.random.default_rng(1).standard_normal((8, 1, 32, 32)).astype(np.float32))
    y = cp.tensor(np.arange(8) % 10)
    opt = cp.optim.SGD(net.parameters(), lr=0.01)
    losses = []
    for _ in range(5):
        loss = cp.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# ---------------------------------------------------------------- torchvision layouts
def torch_twins():
    """Models written in torch following torchvision's source (torchvision itself has no CPU
    build here); their state_dict keys and shapes must equal ours."""
    import torch.nn as tnn

    def alexnet():
        m = tnn.Module()
        m.features = tnn.Sequential(
            tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
            tnn.Conv2d(64, 192, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
            tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(), tnn.Conv2d(384, 256, 3, padding=1),
            tnn.ReLU(), tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2))
        m.avgpool = tnn.AdaptiveAvgPool2d(6)
        m.classifier = tnn.Sequential(tnn.Dropout(), tnn.Linear(9216, 4096), tnn.ReLU(),
                                      tnn.Dropout(), tnn.Linear(4096, 4096), tnn.ReLU(),
                                      tnn.Linear(4096, 1000))
        return m

    def vgg(cfg, bn):
        m, layers, c = tnn.Module(), [], 3
        for v in cfg:
            if v == "M":
                layers.append(tnn.MaxPool2d(2, 2))
            else:
                layers += [tnn.Conv2d(c, v, 3, padding=1)] + ([tnn.BatchNorm2d(v)] if bn else [])
                layers.append(tnn.ReLU())
                c = v
        m.features = tnn.Sequential(*layers)
        m.avgpool = tnn.AdaptiveAvgPool2d(7)
        m.classifier = tnn.Sequential(tnn.Linear(25088, 4096), tnn.ReLU(), tnn.Dropout(),
                                      tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(),
                                      tnn.Linear(4096, 1000))
        return m

    def basic_conv(cin, cout, **kw):
        m = tnn.Module()
        m.conv = tnn.Conv2d(cin, cout, bias=False, **kw)
        m.bn = tnn.BatchNorm2d(cout, eps=0.001)
        return m

    def inception(cin, c1, c3r, c3, c5r, c5, pp):
        m = tnn.Module()
        m.branch1 = basic_conv(cin, c1, kernel_size=1)
        m.branch2 = tnn.Sequential(basic_conv(cin, c3r, kernel_size=1),
                                   basic_conv(c3r, c3, kernel_size=3, padding=1))
        m.branch3 = tnn.Sequential(basic_conv(cin, c5r, kernel_size=1),
                                   basic_conv(c5r, c5, kernel_size=3, padding=1))
        m.branch4 = tnn.Sequential(tnn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                   basic_conv(cin, pp, kernel_size=1))
        return m

    def googlenet():
        m = tnn.Module()
        m.conv1 = basic_conv(3, 64, kernel_size=7, stride=2, padding=3)
        m.conv2 = basic_conv(64, 64, kernel_size=1)
        m.conv3 = basic_conv(64, 192, kernel_size=3, padding=1)
        specs = {"3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
                 "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
                 "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
                 "4e": (528, 256, 160, 320, 32, 128, 128),
                 "5a": (832, 256, 160, 320, 32, 128, 128),
                 "5b": (832, 384, 192, 384, 48, 128, 128)}
        for k, v in specs.items():
            setattr(m, "inception" + k, inception(*v))
        m.fc = tnn.Linear(1024, 1000)
        return m

    def resnet(bottleneck, layers):
        m, inplanes, exp = tnn.Module(), 64, 4 if bottleneck else 1
        m.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        m.bn1 = tnn.BatchNorm2d(64)
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for b in range(n):
                stride = 2 if i > 0 and b == 0 else 1
                blk = tnn.Module()
                if bottleneck:
                    convs = [(inplanes, planes, 1, 1), (planes, planes, 3, stride),
                             (planes, planes * 4, 1, 1)]
                else:
                    convs = [(inplanes, planes, 3, stride), (planes, planes, 3, 1)]
                for j, (ci, co, k, s) in enumerate(convs, 1):
                    setattr(blk, f"conv{j}", tnn.Conv2d(ci, co, k, s, k // 2, bias=False))
                    setattr(blk, f"bn{j}", tnn.BatchNorm2d(co))
                if b == 0 and (stride != 1 or inplanes != planes * exp):
                    blk.downsample = tnn.Sequential(
                        tnn.Conv2d(inplanes, planes * exp, 1, stride, bias=False),
                        tnn.BatchNorm2d(planes * exp))
                inplanes = planes * exp
                blocks.append(blk)
            setattr(m, f"layer{i + 1}", tnn.Sequential(*blocks))
        m.fc = tnn.Linear(512 * exp, 1000)
        return m

    from convnetpy.models.vgg import CFGS
    return {"alexnet": alexnet, "vgg16": lambda: vgg(CFGS[16], False),
            "vgg11_bn": lambda: vgg(CFGS[11], True), "googlenet": googlenet,
            "resnet18": lambda: resnet(False, [2, 2, 2, 2]),
            "resnet34": lambda: resnet(False, [3, 4, 6, 3]),
            "resnet50": lambda: resnet(True, [3, 4, 6, 3])}


@needs_torch
@pytest.mark.parametrize("name", ["alexnet", "vgg16", "vgg11_bn", "googlenet", "resnet18",
                                  "resnet34", "resnet50"])
@pytest.mark.slow
def test_state_dict_keys_match_torchvision_layout(name):
    theirs = torch_twins()[name]().state_dict()
    ours = zoo(name).state_dict()
    assert list(ours) == list(theirs)
    for k in ours:
        assert ours[k].shape == tuple(theirs[k].shape), k
    n_ours = sum(p.numel() for p in zoo(name).parameters())
    assert n_ours == sum(v.numel() for k, v in theirs.items()
                         if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
