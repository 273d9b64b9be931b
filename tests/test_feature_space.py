"""viz.feature_space: penultimate features, exact nearest neighbours, PCA and the 2-D embedding."""

import builtins
import importlib

import numpy as np
import pytest
from PIL import Image

import convnetpy as cp
from convnetpy import nn
from convnetpy.viz.feature_space import embed, features, nearest_neighbours, pca

# the module itself (the package may export the function ``features`` under the same name)
feat_mod = importlib.import_module("convnetpy.viz.feature_space")


def small_net():
    cp.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 4),
                         nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 3)).double()


def test_features_are_the_penultimate_activations_by_hand():
    net = small_net()
    net.train()  # features run it in evaluation mode: the dropout passes everything
    for p in net.parameters():
        p.grad = cp.tensor(np.ones(p.shape))
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    x = np.random.default_rng(0).standard_normal((7, 1, 3, 3))
    w0, b0 = net[0].weight.numpy()[:, 0, 0, 0], net[0].bias.numpy()
    conv = w0[None, :, None, None] * x + b0[None, :, None, None]  # a 1x1 conv: (7, 2, 3, 3)
    hidden = np.maximum(conv.clip(0).reshape(7, -1) @ net[3].weight.numpy().T
                        + net[3].bias.numpy(), 0)
    got = features(net, x, batch_size=3)  # batches of 3, 3 and 1
    assert got.shape == (7, 4)
    np.testing.assert_allclose(got, hidden, rtol=1e-12)
    np.testing.assert_allclose(features(net, x, layer="0"), conv.reshape(7, -1), rtol=1e-12)
    np.testing.assert_allclose(features(net, x[0]), hidden[:1], rtol=1e-12)  # one image
    assert net.training and all(m.training for m in net.modules())
    assert all(np.all(p.grad.numpy() == 1) and p.requires_grad for p in net.parameters())
    assert all(np.array_equal(before[k], v.numpy()) for k, v in net.state_dict().items())
    assert not any(m._forward_hooks for m in net.modules())  # the hooks are gone


def test_features_errors_name_the_layer():
    net = small_net()
    x = np.zeros((2, 1, 3, 3))
    with pytest.raises(ValueError, match=r"no layer 'nope'; its layers are: 0, 1, 2, 3"):
        features(net, x, layer="nope")
    with pytest.raises(ValueError, match="no Linear layer"):
        features(nn.Sequential(nn.Conv2d(1, 2, 1), nn.Flatten()), x)
    with pytest.raises(ValueError, match="batch_size"):
        features(net, x, batch_size=0)


def brute_force(q, b, metric):
    if metric == "cosine":
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        bn = b / np.linalg.norm(b, axis=1, keepdims=True)
        d = np.array([[1 - qi @ bj for bj in bn] for qi in qn])
    else:
        d = np.array([[np.sqrt(((qi - bj) ** 2).sum()) for bj in b] for qi in q])
    order = np.argsort(d, axis=1, kind="stable")
    return order, np.take_along_axis(d, order, axis=1)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_neighbours_equal_a_brute_force_sort(metric, monkeypatch):
    rng = np.random.default_rng(1)
    q, b = rng.standard_normal((9, 5)), rng.standard_normal((40, 5)) + 0.3
    want_i, want_d = brute_force(q, b, metric)
    monkeypatch.setattr(feat_mod, "CHUNK", 100)  # 2 queries at a time: several blocks
    for k in (1, 5, 40):
        idx, dist = nearest_neighbours(q, b, k=k, metric=metric)
        assert idx.shape == dist.shape == (9, k)
        np.testing.assert_array_equal(idx, want_i[:, :k])
        np.testing.assert_allclose(dist, want_d[:, :k], atol=1e-12)
    # a bank row that is a query finds itself at distance 0
    idx, dist = nearest_neighbours(b[:3], b, k=1, metric=metric)
    assert idx.ravel().tolist() == [0, 1, 2] and np.allclose(dist, 0, atol=1e-7)


def test_nearest_neighbours_errors():
    a = np.zeros((3, 4))
    with pytest.raises(ValueError, match="3 features, bank_feats 4"):
        nearest_neighbours(np.zeros((2, 3)), a)
    with pytest.raises(ValueError, match="k must be between 1 and the bank's size"):
        nearest_neighbours(a, a, k=4)
    with pytest.raises(ValueError, match="metric"):
        nearest_neighbours(a, a, k=1, metric="manhattan")


@pytest.mark.slow
def test_pca_matches_sklearn_up_to_sign_and_fixes_the_sign():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 6)) @ rng.standard_normal((6, 6)) + 5.0
    pts, ratio = pca(x, dims=3)
    decomposition = pytest.importorskip("sklearn.decomposition")
    ref = decomposition.PCA(n_components=3).fit(x)
    want = ref.transform(x)
    signs = np.sign((pts * want).sum(axis=0))
    np.testing.assert_allclose(pts, want * signs, atol=1e-10)
    np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, rtol=1e-10)
    assert ratio.sum() <= 1 and np.all(np.diff(ratio) <= 0)
    assert pca(x, dims=6)[1].sum() == pytest.approx(1.0)
    # the sign rule: each component's largest-magnitude loading is positive
    comps = np.linalg.lstsq(x - x.mean(axis=0), pts, rcond=None)[0].T
    lead = comps[np.arange(3), np.abs(comps).argmax(axis=1)]
    assert np.all(lead > 0)
    np.testing.assert_allclose(pca(-x, dims=3)[0], -pts, atol=1e-10)  # same picture, mirrored
    assert np.array_equal(embed(x), pca(x, 2)[0])
    with pytest.raises(ValueError, match="dims must be between 1 and min"):
        pca(x, dims=7)


def test_tsne_embeds_separate_clusters_apart():
    pytest.importorskip("sklearn.manifold")
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 20)
    x = rng.standard_normal((60, 8)) * 0.3 + np.eye(3, 8)[labels] * 6
    pts = embed(x, "tsne", seed=0, max_iter=300)
    assert pts.shape == (60, 2)
    assert np.array_equal(pts, embed(x, "tsne", seed=0, max_iter=300))  # seeded
    nn_idx, _ = nearest_neighbours(pts, pts, k=2, metric="euclidean")
    assert np.mean(labels[nn_idx[:, 1]] == labels) > 0.95  # neighbours share the cluster
    wide = np.hstack([x, np.zeros((60, 52))])  # over 50 features: PCA to 50 first
    assert embed(wide, "tsne", seed=0, max_iter=300).shape == (60, 2)
    with pytest.raises(ValueError, match="method must be 'pca' or 'tsne'"):
        embed(x, "umap")


def test_tsne_without_the_extra_says_how_to_install_it(monkeypatch):
    real = builtins.__import__

    def no_sklearn(name, *args, **kw):
        if name.split(".")[0] == "sklearn":
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r'pip install "convnetpy\[tsne\]"'):
        embed(np.zeros((10, 3)), "tsne")


def test_neighbours_command_finds_a_training_image_itself_first(digits_run, tmp_path, capsys):
    from convnetpy.cli import main
    from convnetpy.data import get_dataset

    ds = get_dataset("digits", None)
    query = tmp_path / "q.png"
    Image.fromarray(ds.images[17, 0]).save(query)  # training image 17, losslessly
    out = tmp_path / "nb.png"
    assert main(["viz", "neighbours", digits_run, str(query), "-k", "3", "--out",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert "the 3 nearest of the train split of digits" in text
    first = text.splitlines()[1].split()  # "#17", "class", "<label>", "distance", "0.0000"
    assert first[0] == "#17" and first[2] == str(ds.classes[ds.labels[17]])
    assert float(first[4]) == pytest.approx(0, abs=1e-4)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 4 * 96


def test_embedding_command_and_its_errors(digits_run, tmp_path, capsys):
    from convnetpy.cli import main

    out = tmp_path / "e.png"
    assert main(["viz", "embedding", digits_run, "--limit", "100", "--out", str(out)]) == 0
    assert "PCA of the first 100 images of the validation split" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 400
    assert main(["viz", "embedding", digits_run, "--limit", "-1"]) == 2
    assert "--limit must be 0 (all) or more" in capsys.readouterr().err
