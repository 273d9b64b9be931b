"""viz.attribution (saliency, SmoothGrad, Grad-CAM, occlusion, integrated gradients),
render.overlay / heatmap and the ``convnetpy explain`` command."""

import numpy as np
import pytest
from conftest import HAVE_TORCH, needs_torch
from PIL import Image

import convnetpy as cp
from convnetpy import models, nn
from convnetpy.cli import main
from convnetpy.viz import attribution as A
from convnetpy.viz import render

if HAVE_TORCH:
    import torch
    import torch.nn.functional as TF


def small_net():
    """float64; BatchNorm with non-trivial running statistics (used in eval mode)."""
    cp.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(6 * 5 * 5, 3)).double()
    rng = np.random.default_rng(1)
    bn = net[1]
    for t, lo, hi in ((bn.running_mean, -0.5, 0.5), (bn.running_var, 0.5, 2.0),
                      (bn.weight, 0.5, 1.5), (bn.bias, -0.3, 0.3)):
        t.data[...] = rng.uniform(lo, hi, t.shape)
    return net


def images(n=3, size=11, seed=2):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size))


def torch_twin(net):
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(6 * 5 * 5, 3)).double().eval()
    tnet.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                          for k, v in net.state_dict().items()})
    return tnet


@needs_torch
@pytest.mark.torch
def test_saliency_is_torchs_input_gradient():
    net, x = small_net(), images()
    tnet = torch_twin(net)
    xt = torch.tensor(x, requires_grad=True)
    out = tnet(xt)
    pred = out.argmax(1)
    out[torch.arange(3), pred].sum().backward()
    expect = xt.grad.abs().amax(1).numpy()
    got = A.saliency(net, x)
    assert got.shape == (3, 11, 11) and got.dtype == np.float64
    np.testing.assert_allclose(got, expect, atol=1e-10)
    xt.grad = None
    tnet(xt)[:, 2].sum().backward()
    np.testing.assert_allclose(A.saliency(net, x, target=2), xt.grad.abs().amax(1).numpy(),
                               atol=1e-10)


def torch_cam(tnet, x, layer, target):
    store = {}

    def hook(module, inputs, output):
        output.retain_grad()
        store["a"] = output

    handle = tnet[layer].register_forward_hook(hook)
    out = tnet(torch.tensor(x))
    handle.remove()
    out[torch.arange(len(x)), torch.as_tensor(target)].sum().backward()
    a = store["a"]
    cam = torch.relu((a.grad.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
    return TF.interpolate(cam, size=x.shape[2:], mode="bilinear",
                          align_corners=False)[:, 0].detach().numpy()


@needs_torch
@pytest.mark.torch
def test_grad_cam_is_the_formula_computed_with_torch_hooks():
    net, x = small_net(), images()
    tnet = torch_twin(net)
    pred = tnet(torch.tensor(x)).argmax(1).numpy()
    # default: the last conv (index 4, maps 5x5 upsampled to 11x11, a ratio of 2.2)
    got = A.grad_cam(net, x)
    assert got.shape == (3, 11, 11) and (got >= 0).all() and got.max() > 0
    np.testing.assert_allclose(got, torch_cam(tnet, x, 4, pred), atol=1e-10)
    np.testing.assert_allclose(A.grad_cam(net, x, layer=net[4]), got, atol=0)
    # a non-default layer, not a conv: the max-pool's 5x5 maps
    np.testing.assert_allclose(A.grad_cam(net, x, target=[0, 1, 2], layer="3"),
                               torch_cam(tnet, x, 3, [0, 1, 2]), atol=1e-10)
    # the first conv at full size (no resampling)
    np.testing.assert_allclose(A.grad_cam(net, x, target=1, layer="0"),
                               torch_cam(tnet, x, 0, [1, 1, 1]), atol=1e-10)


@needs_torch
@pytest.mark.torch
@pytest.mark.parametrize("src,dst", [((5, 5), (11, 11)), ((3, 7), (10, 16)), ((1, 4), (3, 9)),
                                     ((8, 6), (5, 4)), ((4, 4), (4, 4))])
def test_upsample_matches_torch_interpolate(src, dst):
    maps = np.random.default_rng(0).standard_normal((2,) + src)
    expect = TF.interpolate(torch.tensor(maps)[:, None], size=dst, mode="bilinear",
                            align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(A.upsample_bilinear(maps, dst), expect, atol=1e-12)


class LateFirst(nn.Module):
    """Defines ``late`` before ``early`` but calls early first: call order decides."""

    def __init__(self):
        super().__init__()
        self.late = nn.Conv2d(2, 3, 3)
        self.early = nn.Conv2d(3, 2, 3, padding=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))

    def forward(self, x):
        return self.head(self.late(self.early(x)))


def test_grad_cam_default_is_the_last_conv_called():
    cp.manual_seed(0)
    net = LateFirst().double()
    x = images(2, 6)
    assert A.last_conv(net, x) == "late"
    np.testing.assert_array_equal(A.grad_cam(net, x), A.grad_cam(net, x, layer="late"))
    assert not np.array_equal(A.grad_cam(net, x), A.grad_cam(net, x, layer="early"))


def region_model(c=2, h=9, w=9, rows=(2, 6), cols=(3, 8)):
    """Class 0's score is the sum of the image over a rectangle; class 1's is 0."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 2)).double()
    mask = np.zeros((c, h, w))
    mask[:, rows[0]:rows[1], cols[0]:cols[1]] = 1
    net[1].weight.data[...] = np.stack([mask.ravel(), np.zeros(mask.size)])
    net[1].bias.data[...] = 0
    return net, mask


def test_occlusion_on_a_model_whose_answer_is_known():
    net, mask = region_model(h=8, w=8)
    x = np.random.default_rng(3).uniform(0.5, 1.0, (2, 2, 8, 8))
    # 2x2 tiles: each pixel's map is the part of the region in its own tile
    got = A.occlusion(net, x, target=0, patch=2, stride=2)
    tiles = (x * mask).reshape(2, 2, 4, 2, 4, 2).sum(axis=(1, 3, 5))  # (N, 4, 4) tile sums
    np.testing.assert_allclose(got, np.repeat(np.repeat(tiles, 2, 1), 2, 2), atol=1e-12)
    # outside the region the drop is zero up to the rounding of the two GEMM sums
    assert (np.abs(got[:, :, :2]) <= 1e-12).all() and (got[:, 4:6, 3:8] > 0).all()
    # overlapping, ragged patches (starts 0, 3, flush 5) and a baseline image
    net, mask = region_model()
    x = np.random.default_rng(4).standard_normal((1, 2, 9, 9))
    base = np.full((2, 9, 9), 0.25)
    total, count = np.zeros((9, 9)), np.zeros((9, 9))
    for r in (0, 3, 5):
        for q in (0, 3, 5):
            occluded = x[0].copy()
            occluded[:, r:r + 4, q:q + 4] = base[:, r:r + 4, q:q + 4]
            total[r:r + 4, q:q + 4] += ((x[0] - occluded) * mask).sum()
            count[r:r + 4, q:q + 4] += 1
    got = A.occlusion(net, x, target=0, patch=4, stride=3, baseline=base, batch_size=4)
    np.testing.assert_allclose(got[0], total / count, atol=1e-12)
    np.testing.assert_array_equal(A.occlusion(net, x, target=1, patch=4, stride=3), 0)


def test_integrated_gradients_completeness_and_linear_exactness():
    net, x = small_net(), images(2)
    base = np.random.default_rng(5).standard_normal((3, 11, 11)) * 0.1
    with cp.no_grad():  # eval: batch norm on its running statistics, as the methods run it
        gap = (net.eval()(cp.tensor(x)).data - net(cp.tensor(base[None])).data)[:, 1]
    # ReLU and max-pool make the path's gradient jump: the midpoint rule's error is O(1/steps)
    for steps in (4, 16, 64, 256):
        err = np.abs(A.integrated_gradients(net, x, 1, base, steps).sum(axis=(1, 2)) - gap)
        assert (err <= np.abs(gap) / steps).all(), (steps, err, gap)
    assert err.max() < 0.05 * np.abs(gap).min()
    # a linear model: the gradient is constant, so (x - b) * w exactly, for any steps
    lin, _ = region_model(c=3, h=11, w=11)
    lin[1].weight.data[...] = np.random.default_rng(6).standard_normal((2, 3 * 11 * 11))
    w = lin[1].weight.data[0].reshape(3, 11, 11)
    got = A.integrated_gradients(lin, x, 0, base, steps=3)
    np.testing.assert_allclose(got, ((x - base) * w).sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(A.integrated_gradients(lin, x, 0, steps=1),
                               (x * w).sum(axis=1), atol=1e-12)  # baseline zeros


def test_smoothgrad_is_the_mean_saliency_of_seeded_noisy_copies():
    net, x = small_net(), images(2)
    got = A.smoothgrad(net, x, samples=5, noise=0.2, seed=7, batch_size=3)
    np.testing.assert_array_equal(got, A.smoothgrad(net, x, samples=5, noise=0.2, seed=7))
    assert not np.allclose(got, A.smoothgrad(net, x, samples=5, noise=0.2, seed=8))
    rng = np.random.default_rng(7)
    with cp.no_grad():
        pred = net.eval()(cp.tensor(x)).data.argmax(1)
    for i, img in enumerate(x):
        noisy = img + 0.2 * (img.max() - img.min()) * rng.standard_normal((5,) + img.shape)
        expect = A.saliency(net, noisy, target=int(pred[i])).mean(axis=0)
        np.testing.assert_allclose(got[i], expect, atol=1e-12)
    np.testing.assert_allclose(A.smoothgrad(net, x, samples=3, noise=0.0), A.saliency(net, x),
                               atol=1e-14)


ZOO = [("lenet5", (1, 32, 32)), ("convnetjs_cifar10", (3, 32, 32)), ("resnet20", (3, 32, 32))]
FAST = {"smoothgrad": {"samples": 2}, "occlusion": {"patch": 16, "stride": 16},
        "ig": {"steps": 2}}


@pytest.mark.parametrize("name,shape", ZOO)
def test_every_method_on_zoo_models_leaves_the_model_as_it_was(name, shape):
    cp.manual_seed(0)
    model = models.get(name, num_classes=10, in_channels=shape[0])
    model.train()
    params = list(model.parameters())
    params[0].requires_grad = False
    sentinel = np.full(params[1].shape, 3.0, dtype=np.float32)
    params[1].grad = cp.tensor(sentinel)
    x = np.random.default_rng(0).standard_normal((2,) + shape).astype(np.float32)
    for method in A.METHODS:
        heat = A.explain(model, x, method, target=[1, 7], **FAST.get(method, {}))
        assert heat.shape == (2,) + shape[1:] and heat.dtype == np.float32, method
        assert np.isfinite(heat).all() and np.abs(heat).max() > 0, method
    assert all(m.training for m in model.modules())
    assert params[0].requires_grad is False and params[0].grad is None
    assert all(p.requires_grad for p in params[1:]) and all(p.grad is None for p in params[2:])
    np.testing.assert_array_equal(params[1].grad.data, sentinel)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert A.last_conv(model, x) == convs[-1]


def test_errors_name_the_problem():
    net, x = small_net(), images(1)
    with pytest.raises(ValueError, match=r"layer '7' is a Linear whose output is \(1, 3\), not "
                                         r"maps \(N, C, H, W\); the conv layers are: 0, 4"):
        A.grad_cam(net, x, layer="7")
    with pytest.raises(ValueError, match="no layer 'features.9' in the model; the conv layers "
                                         "are: 0, 4"):
        A.grad_cam(net, x, layer="features.9")
    with pytest.raises(ValueError, match="the model has no Conv2d layer"):
        A.grad_cam(region_model()[0], images(1, 9)[:, :2])
    for method in A.METHODS:
        with pytest.raises(ValueError, match=r"target class 3 is out of range: the model has 3 "
                                             r"classes \(0..2\)"):
            A.explain(net, x, method, target=3)
    with pytest.raises(ValueError, match=r"must be images \(N, C, H, W\) or one image "
                                         r"\(C, H, W\), got shape \(11, 11\)"):
        A.saliency(net, x[0, 0])
    with pytest.raises(ValueError, match=r"patch 12 is larger than the image \(11 x 11\)"):
        A.occlusion(net, x, patch=12)
    with pytest.raises(ValueError, match="stride must be a positive integer, got 1.5"):
        A.occlusion(net, x, stride=1.5)
    with pytest.raises(ValueError, match="stride 8 is larger than patch 2, which would leave "
                                         "pixels no patch covers; use stride <= 2"):
        A.occlusion(net, x, patch=2, stride=8)
    with pytest.raises(ValueError, match=r"baseline of shape \(2,\) does not broadcast"):
        A.integrated_gradients(net, x, baseline=np.zeros(2))
    with pytest.raises(ValueError, match="unknown explanation method 'lime'; the methods are: "
                                         "saliency, smoothgrad, gradcam, occlusion, ig"):
        A.explain(net, x, "lime")
    one = A.saliency(net, x[0])  # one image (C, H, W) is a batch of one
    assert one.shape == (1, 11, 11)


def test_overlay_blends_by_heat_and_tops_out_at_the_colormaps_end():
    from matplotlib import colormaps

    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (3, 6, 7), dtype=np.uint8)
    heat = np.zeros((6, 7))
    heat[2, 3], heat[4, 5] = 5.0, 2.5
    out = np.asarray(render.overlay(px, heat, alpha=0.6))
    img = px.transpose(1, 2, 0).astype(float)
    cold = heat == 0
    np.testing.assert_array_equal(out[cold], px.transpose(1, 2, 0)[cold])
    top = np.array(colormaps["jet"](1.0)[:3]) * 255
    np.testing.assert_allclose(out[2, 3], 0.4 * img[2, 3] + 0.6 * top, atol=0.51)
    half = np.array(colormaps["jet"](0.5)[:3]) * 255
    np.testing.assert_allclose(out[4, 5], 0.7 * img[4, 5] + 0.3 * half, atol=0.51)
    # signed: diverging "bwr", scaled by the largest |value|; a grey image becomes RGB
    signed = np.zeros((6, 7))
    signed[0, 0], signed[1, 1] = -4.0, 2.0
    out = np.asarray(render.overlay(px[:1], signed, alpha=1.0))
    assert out.shape == (6, 7, 3) and tuple(out[0, 0]) == (0, 0, 255)
    assert (out[3, 3] == px[0, 3, 3]).all()
    colour = np.asarray(render.heatmap(heat))
    assert tuple(colour[2, 3]) == tuple(np.round(top).astype(int))
    with pytest.raises(ValueError, match=r"heat map \(5, 7\) and image \(6, 7\) differ"):
        render.overlay(px, heat[:5])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from convnetpy.data import synthetic
    from convnetpy.train import TrainConfig, fit

    out = tmp_path_factory.mktemp("explain")
    res = fit(TrainConfig(model="lenet5", data="synthetic:64", epochs=1, max_steps=2,
                          batch_size=16, progress=False, out=str(out), model_kwargs={}),
              log=lambda line: None)
    image = out / "x.png"
    Image.fromarray(synthetic(4).images[1].transpose(1, 2, 0)).save(image)
    return res["run_dir"], str(image)


def test_explain_command_writes_each_methods_picture(tiny_run, tmp_path, capsys):
    from convnetpy.cli.common import image_input
    from convnetpy.train import load_trained

    run, image = tiny_run
    extra = {"smoothgrad": ["--samples", "3"], "ig": ["--steps", "4"],
             "occlusion": ["--patch", "8", "--stride", "8"], "gradcam": ["--layer", "features.0"]}
    for method in A.METHODS:
        out = tmp_path / f"{method}.png"
        argv = ["explain", run, image, "--method", method, "--target", "quadrant1", "-o",
                str(out)] + extra.get(method, [])
        assert main(argv) == 0, method
        with Image.open(out) as im:
            assert im.format == "PNG" and im.size[0] > 400 and im.size[1] > 150
    text = capsys.readouterr().out
    assert text.count("wrote ") == 5 and "class 'quadrant1'" in text
    assert "gradcam on features.0" in text
    # the middle panel is the map the library computes, coloured and zoomed 5x
    ck, _, model = load_trained(run)
    pixels, x = image_input(image, ck.meta)
    heat = A.grad_cam(model, x, 1, layer="features.0")[0]
    want = np.asarray(render.heatmap(heat)).repeat(5, axis=0).repeat(5, axis=1)
    with Image.open(tmp_path / "gradcam.png") as im:
        page = np.asarray(im.convert("RGB"))
    # somewhere in the picture, pixel for pixel: the map the library computes, zoomed 5x
    ys, xs = np.nonzero((page == want[0, 0]).all(axis=2))
    assert any(np.array_equal(page[y:y + 160, x:x + 160], want) for y, x in zip(ys, xs))


def test_explain_command_errors(tiny_run, tmp_path, capsys):
    run, image = tiny_run
    out = tmp_path / "x.png"
    assert main(["explain", run, image, "--method", "saliency", "--target", "cat", "-o",
                 str(out)]) == 2
    assert ("--target 'cat' is not a class of this model; the classes are quadrant0, "
            "quadrant1, quadrant2, quadrant3 (or an index 0..3)") in capsys.readouterr().err
    assert main(["explain", run, image, "--method", "saliency", "--target", "4"]) == 2
    assert main(["explain", run, image, "--method", "saliency", "--target", "all"]) == 2
    assert "--target takes one class, not 'all'" in capsys.readouterr().err
    assert main(["explain", run, image, "--method", "gradcam", "--layer", "nope"]) == 2
    assert "no layer 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["explain", run, image, "--method", "ig", "--patch", "4"])
    assert e.value.code == 2 and "--patch applies to --method occlusion only" in \
        capsys.readouterr().err
    assert not out.exists()
