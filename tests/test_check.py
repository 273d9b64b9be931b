"""check(): the first impossible layer, named with its path and configuration, the formula
with numbers and concrete fixes; warnings for non-integer sizes."""

import pytest
from conftest import zoo

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import models, nn


@pytest.mark.slow
def test_clean_model_has_no_warnings():
    assert cp.check(zoo("vgg16"), (1, 3, 224, 224)) == []


def test_output_size_not_positive():
    net = nn.Sequential(nn.Conv2d(1, 4, 5), nn.MaxPool2d(2), nn.Conv2d(4, 4, 5),
                        nn.MaxPool2d(2), nn.Conv2d(4, 4, 5))
    with pytest.raises(cp.ShapeError) as e:
        cp.check(net, (1, 1, 20, 20))
    assert str(e.value) == (
        "Conv2d(4, 4, kernel_size=(5, 5), stride=(1, 1)) at 4: output height "
        "(2 + 2*0 - 5)/1 + 1 = -2 is not positive: the (dilated) kernel height 5 is larger than "
        "the padded input height 2 (2 + padding 0). Use padding=2, kernel_size=2 (or smaller) "
        "or an input height of at least 5.")
    assert e.value.path == "4"


def test_pool_window_larger_than_input():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(4))
    with pytest.raises(ValueError, match=r"MaxPool2d\(kernel_size=4, .*\) at 1: output height "
                                         r"\(3 \+ 2\*0 - 4\)/4 \+ 1 = 0.75 is too small"):
        cp.check(net, (1, 1, 5, 9))


def test_channel_mismatch():
    net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(32, 8, 3))
    with pytest.raises(ValueError) as e:
        cp.check(net, (1, 3, 16, 16))
    assert str(e.value).startswith(
        "Conv2d(32, 8, kernel_size=(3, 3), stride=(1, 1)) at 2: expected input of shape "
        "(N, 32, H, W) (weight (8, 32, 3, 3), groups=1), got (1, 16, 14, 14): the input has 16 "
        "channels, the layer expects in_channels=32")


def test_linear_in_features_says_the_right_number():
    net = models.get("lenet5")
    with pytest.raises(ValueError, match=r"Linear\(in_features=400, .*\) at classifier.1: "
                                         r"expected input \(\*, 400\) .* got shape \(1, 1024\) "
                                         r".* use in_features=1024"):
        cp.check(net, (1, 1, 44, 44))


def test_residual_add_of_mismatched_shapes():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(16, 32, 3, stride=2, padding=1)

        def forward(self, x):
            return F.relu(self.conv(x) + x)

    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), Block())
    with pytest.raises(ValueError) as e:
        cp.check(net, (2, 3, 32, 32))
    assert str(e.value) == (
        "Block() at 1: shapes (1, 32, 16, 16) and (1, 16, 32, 32) do not broadcast. A residual "
        "add needs equal shapes: project the shortcut with Conv2d(16, 32, kernel_size=1, "
        "stride=2) (and a BatchNorm2d), or fix the block's stride/channels.")


def test_concatenation_of_mismatched_spatial_sizes():
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(8, 4, 1)
            self.b = nn.Conv2d(8, 4, 3)  # no padding: 2 pixels smaller

        def forward(self, x):
            return cp.cat([self.a(x), self.b(x)], dim=1)

    with pytest.raises(ValueError, match=r"Branches\(\) at 0: dim=1: sizes must match except "
                                         r"along dim 1; .* got 28x28 and 26x26; give each KxK "
                                         r"branch padding=\(K-1\)//2"):
        cp.check(nn.Sequential(Branches()), (1, 8, 28, 28))


def test_non_integer_sizes_are_warnings_not_errors():
    warnings = cp.check(nn.Sequential(nn.Conv2d(1, 1, 3, stride=2)), (1, 1, 10, 10))
    assert len(warnings) == 2 and all("4.5 is not an integer" in w for w in warnings)


def test_summary_raises_what_check_raises():
    net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Conv2d(8, 8, 3))
    with pytest.raises(cp.ShapeError, match="at 1: expected input of shape"):
        cp.summary(net, (1, 3, 16, 16))
