"""viz.probe (activations, gradients, receptive fields, unit explanations), viz.render and
the ``convnetpy viz`` commands."""

import numpy as np
import pytest
from PIL import Image

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import nn
from convnetpy.cli import main
from convnetpy.viz import render
from convnetpy.viz.probe import explain_unit, probe


def small_net():
    cp.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 5, 3, stride=2, padding=1), nn.BatchNorm2d(5), nn.ReLU(),
                         nn.Flatten(), nn.Linear(5 * 2 * 2, 3))


def test_probe_records_each_layer_and_leaves_the_model_as_it_was():
    net = small_net()
    net.train()
    x = np.random.default_rng(0).standard_normal((3, 8, 8)).astype(np.float32)
    for p in net.parameters():
        p.grad = cp.tensor(np.full(p.shape, 7.0, dtype=np.float32))
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    layers = probe(net, x, target=1)
    assert [lp.kind for lp in layers] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d",
                                          "BatchNorm2d", "ReLU", "Flatten", "Linear"]
    assert [lp.output.shape for lp in layers][:3] == [(4, 8, 8), (4, 8, 8), (4, 4, 4)]
    # the outputs are the network's own, layer by layer, in evaluation mode
    net.eval()
    with cp.no_grad():
        h = cp.tensor(x[None])
        for lp, module in zip(layers, net):
            h = module(h)
            np.testing.assert_allclose(lp.output, h.numpy()[0], rtol=1e-6, atol=1e-6)
    # the gradient at the logits is softmax - onehot(target)
    p = F.softmax(cp.tensor(layers[-1].output[None]), dim=1).numpy()[0]
    np.testing.assert_allclose(layers[-1].grad, p - np.eye(3)[1], rtol=1e-5, atol=1e-6)
    # the ReLU passes gradient only where its output is positive
    relu = layers[1]
    np.testing.assert_allclose(layers[0].grad, relu.grad * (layers[0].output > 0), atol=1e-7)
    assert net.training is False  # we set eval above; probe restored train, checked next
    net.train()
    layers = probe(net, x)
    assert net.training and all(m.training for m in net.modules())
    assert all(np.all(p.grad.numpy() == 7.0) for p in net.parameters())
    after = {k: v.numpy() for k, v in net.state_dict().items()}
    assert all(np.array_equal(before[k], after[k]) for k in before)  # no running-stat update


def test_receptive_field_windows():
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3), nn.Flatten(),
                        nn.Linear(4, 2))
    layers = probe(net, np.ones((1, 6, 6), dtype=np.float32))
    assert layers[0].rf_window(0, 0) == ((0, 3), (0, 3))
    assert layers[1].rf_window(1, 0) == ((1, 6), (0, 5))  # two 3x3 convs: a 5x5 window
    pad = probe(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Flatten(), nn.Linear(36, 2)),
                np.ones((1, 6, 6), dtype=np.float32))
    assert pad[0].rf_window(0, 0) == ((0, 2), (0, 2))  # clipped: the rest is padding
    with pytest.raises(ValueError, match="not spatial"):
        layers[3].rf_window(0, 0)


def test_explain_conv_unit_adds_up_to_its_output_and_relu():
    net = small_net()
    x = np.random.default_rng(1).standard_normal((3, 8, 8)).astype(np.float32)
    layers = probe(net, x)
    for c, y, xx in [(0, 0, 0), (3, 4, 7), (2, 7, 3)]:
        u = explain_unit(layers, 0, c, y, xx)
        assert u["total"] == pytest.approx(float(layers[0].output[c, y, xx]), rel=1e-5,
                                           abs=1e-5)
        assert u["relu"] == pytest.approx(float(layers[1].output[c, y, xx]), abs=1e-5)
        assert np.array(u["window"]).shape == (3, 3, 3)
    u = explain_unit(layers, 3, 1, 1, 1)  # the strided conv: no ReLU right after it
    assert u["total"] == pytest.approx(float(layers[3].output[1, 1, 1]), rel=1e-5, abs=1e-5)
    assert "relu" not in u


def test_explain_pool_unit_names_the_winner():
    net = small_net()
    layers = probe(net, np.random.default_rng(2).standard_normal((3, 8, 8)).astype(np.float32))
    u = explain_unit(layers, 2, 1, 2, 3)
    r, c = u["winner"]
    assert u["window"][r][c] == pytest.approx(float(layers[2].output[1, 2, 3]))
    # 3x3 conv (padding 1) then 2x2 pool: a 4x4 window every 2 pixels, clipped to the image
    assert u["input_window"] == {"rows": [3, 7], "cols": [5, 8], "size": [4.0, 4.0]}
    with pytest.raises(ValueError, match="outside"):
        explain_unit(layers, 2, 9, 0, 0)
    with pytest.raises(ValueError, match="no spatial units"):
        explain_unit(layers, 7, 0, 0, 0)


def test_render_grid_and_filters():
    # each map scaled by its own min and max; a constant map is mid-grey
    flat = np.asarray(render.grid(np.stack([np.full((2, 2), 3.0), [[0.0, 1.0], [0.0, 0.0]]]),
                                  columns=2))
    assert flat[:, :2, 0].tolist() == [[128, 128], [128, 128]]
    assert flat[0, 3:, 0].tolist() == [0, 255]
    img = render.grid(np.random.rand(5, 4, 3), scale=2, columns=2)
    assert img.size == (2 * 6 + 1, 3 * 8 + 2)
    rgb = render.filters(np.random.rand(8, 3, 5, 5), scale=3)
    assert rgb.mode == "RGB" and rgb.size == (3 * 15 + 2, 3 * 15 + 2)  # 3 x 3 tiles of 15 px
    one = render.filters(np.random.rand(6, 1, 5, 5), scale=2)
    assert one.size == (3 * 10 + 2, 2 * 10 + 1)  # one patch per filter, 3 x 2 tiles
    grey = render.filters(np.random.rand(4, 6, 3, 3), scale=2)
    assert grey.size == (6 * 7 - 1, 4 * 7 - 1)  # a filter per row, a channel per column


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from convnetpy.train import TrainConfig, fit

    out = tmp_path_factory.mktemp("runs")
    res = fit(TrainConfig(model="lenet5", data="digits", epochs=1, lr=0.05,
                          progress=False, out=str(out), model_kwargs={"padding": 2}),
              log=lambda line: None)
    return res["run_dir"]


@pytest.mark.slow
def test_viz_commands_write_pngs(trained_run, tmp_path, capsys):
    digit = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((40, 30)) * 255).astype(np.uint8)).save(
        digit)
    for argv, name in [(["viz", "filters", trained_run], "f.png"),
                       (["viz", "activations", trained_run, str(digit)], "a.png"),
                       (["viz", "curves", trained_run], "c.png"),
                       (["viz", "confusion", trained_run], "m.png")]:
        out = tmp_path / name
        assert main(argv + ["--out", str(out)]) == 0, argv
        with Image.open(out) as im:
            assert im.format == "PNG" and im.size[0] > 50 and im.size[1] > 50
    text = capsys.readouterr().out
    assert "2 conv layers" in text and "prediction" in text and "epochs" in text


def test_viz_errors_name_the_problem(trained_run, tmp_path, capsys):
    assert main(["viz", "filters", trained_run, "--layer", "nope"]) == 2
    assert "no conv layer named 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["viz", "activations", trained_run, str(bad), "--out",
                 str(tmp_path / "x.png")]) == 2
    assert "cannot read it as a JPEG or PNG" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    assert main(["viz", "curves", str(tmp_path)]) == 2
    assert "metrics.jsonl does not exist" in capsys.readouterr().err
