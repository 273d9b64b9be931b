"""viz.synthesis (class model images, fooling images, the Gaussian blur) and the
``convnetpy visualize-class`` and ``convnetpy fool`` commands."""

import numpy as np
import pytest
from PIL import Image

import convnetpy as cp
from convnetpy import nn
from convnetpy.cli import main
from convnetpy.viz.synthesis import (
    class_image,
    fool,
    gaussian_blur,
    gaussian_kernel,
    pixel_range,
    to_pixels,
)


def conv_net():
    cp.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def linear_net(weight, bias, dtype=np.float64):
    net = nn.Sequential(nn.Flatten(), nn.Linear(weight.shape[1], weight.shape[0]))
    net[1].weight = nn.Parameter(cp.tensor(np.asarray(weight, dtype=dtype)))
    net[1].bias = nn.Parameter(cp.tensor(np.asarray(bias, dtype=dtype)))
    return net


def test_class_image_raises_the_score_and_leaves_the_model_alone():
    net = conv_net()
    net.train()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    img = class_image(net, 2, shape=(1, 8, 8), steps=40, lr=0.3, blur_every=5)
    assert img.target == 2 and img.image.shape == (1, 8, 8) and len(img.scores) == 40
    assert img.score > img.scores[0] + 1.0
    assert np.mean(img.scores[-10:]) > np.mean(img.scores[:10]) + 1.0  # jitter aside, it climbs
    assert net.training and all(m.training for m in net.modules())
    assert all(p.grad is None and p.requires_grad for p in net.parameters())
    assert all(np.array_equal(before[k], v.numpy()) for k, v in net.state_dict().items())
    # reproducible with a seed, another seed starts elsewhere
    again = class_image(net, 2, shape=(1, 8, 8), steps=40, lr=0.3, blur_every=5)
    assert np.array_equal(img.image, again.image) and img.scores == again.scores
    other = class_image(net, 2, shape=(1, 8, 8), steps=40, lr=0.3, blur_every=5, seed=1)
    assert not np.allclose(img.image, other.image)


def test_class_image_clamps_to_the_pixel_range_and_converts_to_pixels():
    mean, std = [0.2], [0.4]
    img = class_image(conv_net(), 0, shape=(1, 8, 8), steps=30, lr=0.5, blur_every=0,
                      mean=mean, std=std)
    lo, hi = pixel_range(mean, std, 1)
    assert lo.item() == pytest.approx(-0.5) and hi.item() == pytest.approx(2.0)
    assert img.image.min() >= -0.5 - 1e-6 and img.image.max() <= 2.0 + 1e-6
    assert img.image.min() == pytest.approx(-0.5) or img.image.max() == pytest.approx(2.0)
    want = np.clip(np.rint((img.image.astype(np.float64) * 0.4 + 0.2) * 255), 0, 255)
    np.testing.assert_array_equal(img.pixels, want.astype(np.uint8))
    # without mean/std the pixels are min-max scaled
    assert to_pixels(np.array([[[2.0, 4.0, 3.0]]])).tolist() == [[[0, 255, 128]]]


def test_a_linear_models_step_is_its_weight_row():
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((3, 12)), rng.standard_normal(3)
    net = linear_net(w, b)
    kw = dict(shape=(3, 2, 2), lr=0.3, jitter=0, blur_every=0, seed=4)
    one = class_image(net, 1, steps=1, l2=0.0, **kw).image
    two = class_image(net, 1, steps=2, l2=0.0, **kw).image
    # d score_1 / dx = W[1] everywhere; the step is lr * g / rms(g)
    rms = np.sqrt(np.mean(w[1] ** 2))
    np.testing.assert_allclose((two - one).ravel(), 0.3 * w[1] / rms, rtol=1e-10)
    # with the L2 penalty the gradient is W[1] - 2 * l2 * x
    one = class_image(net, 1, steps=1, l2=0.5, **kw).image
    two = class_image(net, 1, steps=2, l2=0.5, **kw).image
    g = w[1] - 2 * 0.5 * one.ravel()
    np.testing.assert_allclose((two - one).ravel(), 0.3 * g / np.sqrt(np.mean(g ** 2)),
                               rtol=1e-10)
    # the score rises by W[1] . step (a linear model)
    img = class_image(net, 1, steps=3, l2=0.0, **kw)
    np.testing.assert_allclose(np.diff(img.scores), 0.3 * w[1] @ w[1] / rms, rtol=1e-10)


def test_several_classes_are_made_together_each_on_its_own():
    net = conv_net()
    kw = dict(shape=(1, 8, 8), steps=10, jitter=0, blur_every=3)
    both = class_image(net, [0, 2], **kw)
    assert [c.target for c in both] == [0, 2]
    alone = class_image(net, 0, **kw)  # the same first noise image, no jitter: the same path
    np.testing.assert_allclose(both[0].image, alone.image, rtol=1e-5, atol=1e-6)
    assert both[1].score > both[1].scores[0]
    with pytest.raises(ValueError, match="out of range"):
        class_image(net, [0, 7], **kw)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        class_image(net, 0, shape=(1, 8, 8), steps=0)


def test_blur_is_a_gaussian_convolution():
    k = gaussian_kernel(0.7)  # radius int(4 * 0.7 + 0.5) = 3
    d = np.arange(-3, 4)
    np.testing.assert_allclose(k, np.exp(-d ** 2 / (2 * 0.49)) / np.exp(-d ** 2 / 0.98).sum())
    x = np.zeros((9, 9))
    x[4, 4] = 1.0  # an impulse away from the edges: the blur is the 2-D kernel itself
    np.testing.assert_allclose(gaussian_blur(x, 0.7)[1:8, 1:8], np.outer(k, k), atol=1e-15)
    # by hand at the corner: mirrored edges (d c b a | a b c d) for a 2-tap-radius kernel
    y = np.arange(12.0).reshape(3, 4)
    k1 = gaussian_kernel(0.4)  # radius 2
    pad = np.pad(y, 2, mode="symmetric")
    want = sum(k1[i] * k1[j] * pad[i, j] for i in range(5) for j in range(5))
    assert gaussian_blur(y, 0.4)[0, 0] == pytest.approx(want)
    ndimage = pytest.importorskip("scipy.ndimage")
    z = np.random.default_rng(0).standard_normal((2, 3, 7, 9))
    np.testing.assert_allclose(gaussian_blur(z, 0.8),
                               ndimage.gaussian_filter(z, (0, 0, 0.8, 0.8), mode="reflect"),
                               atol=1e-12)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        gaussian_blur(z, 0)


def test_fool_takes_the_counted_steps_of_a_hand_computed_path():
    # score_0 = x0, score_1 = x1: each step adds lr * e1, which overtakes x0 = 1 at step 4
    w = np.eye(2, 4)
    net = linear_net(w, np.zeros(2), dtype=np.float32)
    x = np.array([[[1.0, 0.0], [0.0, 0.0]]], dtype=np.float32)
    r = fool(net, x, 1, lr=0.3, mean=[0.0], std=[0.5])
    assert r.success and r.steps == 4 and r.final_class == 1 and r.original_class == 0
    np.testing.assert_allclose(r.perturbation.ravel(), [0, 1.2, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(r.image, x + r.perturbation)
    assert r.l2 == pytest.approx(np.linalg.norm(r.perturbation))
    assert r.linf == pytest.approx(np.abs(r.perturbation).max())
    assert r.l2_pixels == pytest.approx(1.2 * 0.5 * 255, rel=1e-6)
    assert r.linf_pixels == pytest.approx(1.2 * 0.5 * 255, rel=1e-6)
    assert r.original_probability == pytest.approx(np.e / (1 + np.e), rel=1e-6)
    p1 = np.exp(1.2) / (np.exp(1.0) + np.exp(1.2))
    assert r.final_probability == pytest.approx(p1, rel=1e-6) == r.target_probability
    # already the target: nothing to change
    same = fool(net, x, 0)
    assert same.success and same.steps == 0 and same.l2 == 0 and same.l2_pixels is None


def test_fool_stops_at_the_first_flip_even_when_the_target_probability_fell():
    # scores W x + b at x = 0: class 1 leads; a step along W[0] = (1, 0) raises class 0 and
    # class 2 (9x faster), so at the flip class 0 leads with less probability than at x = 0
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 3))
    net[1].weight.data[...] = [[1, 0], [0, 1], [9, 0]]
    net[1].bias.data[...] = [0, 0.05, -1]
    r = fool(net, np.zeros((1, 1, 2), dtype=np.float64), target=0, lr=0.1)
    scores = np.array([0.1, 0.05, -0.1])  # after one step of 0.1 along (1, 0)
    p = np.exp(scores) / np.exp(scores).sum()
    assert r.success and r.steps == 1 and r.final_class == 0
    assert r.final_probability == pytest.approx(p[0]) and p[0] < np.exp(0) / np.exp(
        [0, 0.05, -1]).sum()


def test_fool_that_cannot_flip_returns_the_best_attempt():
    net = linear_net(np.eye(2, 4), [100.0, 0.0], dtype=np.float32)
    r = fool(net, np.zeros((1, 1, 2, 2), dtype=np.float32), 1, lr=0.1, max_steps=3)
    assert not r.success and r.final_class == 0 and r.steps == 3
    np.testing.assert_allclose(r.perturbation.ravel(), [0, 0.3, 0, 0], rtol=1e-6)
    with pytest.raises(ValueError, match="one image"):
        fool(net, np.zeros((2, 1, 2, 2), dtype=np.float32), 1)
    with pytest.raises(ValueError, match="out of range"):
        fool(net, np.zeros((1, 2, 2), dtype=np.float32), 5)


def test_fool_flips_a_small_conv_net_and_clamps_to_pixels():
    net = conv_net()
    x = np.random.default_rng(3).random((1, 8, 8)).astype(np.float32)
    with cp.no_grad():
        start = int(net(cp.tensor(x[None])).numpy().argmax())
    target = (start + 1) % 3
    r = fool(net, x, target, lr=0.05, max_steps=200, mean=[0.0], std=[1.0])
    assert r.success and r.steps >= 1 and r.final_class == target
    assert r.image.min() >= 0 and r.image.max() <= 1  # pixels 0..1 with mean 0, std 1
    with cp.no_grad():
        assert int(net(cp.tensor(r.image[None])).numpy().argmax()) == target


def test_visualize_class_command(digits_run, tmp_path, capsys):
    out = tmp_path / "c.png"
    assert main(["visualize-class", digits_run, "--class", "3", "--class", "7",
                 "--steps", "15", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("3: score") and "\n7: score" in text and "2 classes" in text
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 2 * 112 and im.height > 112
    assert main(["visualize-class", digits_run, "--class", "seven", "-o",
                 str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "--class 'seven' is not a class" in err and "0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in err
    assert not (tmp_path / "x.png").exists()


def test_fool_command(digits_run, tmp_path, capsys):
    from convnetpy.cli.common import image_input
    from convnetpy.data import get_dataset
    from convnetpy.train import load_trained

    digit = tmp_path / "digit.png"
    Image.fromarray(get_dataset("digits", 32, "train").images[0, 0]).save(digit)
    ck, _, model = load_trained(digits_run)
    with cp.no_grad():  # the runner-up class: a briefly trained model is fooled into it
        logits = model(cp.tensor(image_input(digit, ck.meta)[1])).numpy()[0]
    target = str(int(np.argsort(-logits)[1]))
    out = tmp_path / "f.png"
    code = main(["fool", digits_run, str(digit), "--target", target, "--max-steps", "300",
                 "-o", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and f"fooled into {target}" in text and "0..255 pixels" in text
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 3 * 112
    assert main(["fool", digits_run, str(digit), "--target", "cat"]) == 2
    assert "--target 'cat' is not a class of this model" in capsys.readouterr().err
