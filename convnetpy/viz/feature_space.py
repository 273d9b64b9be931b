"""The model's feature space: the vector each image becomes before the classifier
(``features``), the images nearest to each other there (``nearest_neighbours``) and 2-D
maps of it (``pca``, ``embed`` with PCA or t-SNE), as in CS231n's "Visualizing what
ConvNets learn" (last-layer codes, nearest neighbours, t-SNE).

>>> import numpy as np
>>> from convnetpy import nn
>>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> features(net, np.ones((5, 1, 2, 2), dtype=np.float32)).shape   # the 3 ReLU outputs
(5, 3)
>>> idx, dist = nearest_neighbours(np.eye(2), np.array([[0.0, 2.0], [3.0, 0.1]]), k=1)
>>> idx.ravel().tolist()
[1, 0]
"""

from __future__ import annotations

import numpy as np

from ..autograd import no_grad
from ..nn.linear import Linear
from ..nn.module import Module
from ..tensor import Tensor
from .gradients import as_batch, check_positive_int, inspecting, model_dtype

TSNE_HINT = 't-SNE needs scikit-learn: pip install "convnetpy[tsne]"'
CHUNK = 1 << 22  # distance-matrix entries held at once (32 MiB of float64)
EXACT_TSNE = 300  # up to this many points t-SNE uses the exact gradient


def features(model: Module, x, layer: str | None = None, batch_size: int = 256) -> np.ndarray:
    """Each image's feature vector (N, D): by default what the model's last Linear layer
    (the last one called) takes in, the penultimate features; with ``layer`` (a path from
    ``named_modules``, e.g. "features.3") that layer's output, flattened. Run in evaluation
    mode without a graph, ``batch_size`` images at a time; the model is left as it was."""
    batch = as_batch(x)
    check_positive_int(batch_size, "batch_size")
    named = dict(model.named_modules())
    if layer is None:
        watched = [m for m in named.values() if isinstance(m, Linear)]
        if not watched:
            raise ValueError(f"{type(model).__name__} has no Linear layer: name the layer "
                             f"whose output to use with layer=")
    elif layer in named and layer:
        watched = [named[layer]]
    else:
        names = ", ".join(n for n in named if n)
        raise ValueError(f"the model has no layer {layer!r}; its layers are: {names}")
    seen: list[np.ndarray] = []

    def hook(module, inputs, output):
        seen.append((inputs[0] if layer is None else output).numpy())

    handles = [m.register_forward_hook(hook) for m in watched]
    out = []
    try:
        with inspecting(model), no_grad():
            for i in range(0, len(batch), int(batch_size)):
                seen.clear()
                part = batch[i:i + int(batch_size)].astype(model_dtype(model), copy=False)
                model(Tensor(part))
                if not seen:
                    raise ValueError(f"layer {layer!r} was not called in the forward pass")
                out.append(seen[-1].reshape(len(part), -1))
    finally:
        for h in handles:
            h.remove()
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=model_dtype(model))


def _as_feats(a, what: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be feature vectors (N, D), got shape {arr.shape}")
    return arr


def nearest_neighbours(query_feats, bank_feats, k: int = 5,
                       metric: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the ``k`` bank rows nearest to it, nearest first: (indices (Q, k),
    distances (Q, k)). "cosine" distance is 1 - cos(angle) (a zero vector is at distance 1
    from everything), "euclidean" the L2 distance. Exact (every pair is compared), a block
    of queries at a time so the distance matrix held stays near ``CHUNK`` entries."""
    q, b = _as_feats(query_feats, "query_feats"), _as_feats(bank_feats, "bank_feats")
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"query_feats have {q.shape[1]} features, bank_feats {b.shape[1]}: "
                         f"compute both at the same layer")
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= len(b):
        raise ValueError(f"k must be between 1 and the bank's size ({len(b)}), got {k!r}")
    k = int(k)
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-300)
    b_sq = (b * b).sum(axis=1)
    step = max(1, CHUNK // max(len(b), 1))
    idx = np.empty((len(q), k), dtype=np.int64)
    dist = np.empty((len(q), k), dtype=np.float64)
    for s in range(0, len(q), step):
        qs = q[s:s + step]
        if metric == "cosine":
            d = 1.0 - qs @ b.T
        else:  # |q|^2 + |b|^2 - 2 q.b ranks; the kept distances are recomputed exactly
            d = (qs * qs).sum(axis=1)[:, None] + b_sq[None, :] - 2.0 * (qs @ b.T)
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < len(b) else \
            np.tile(np.arange(len(b)), (len(qs), 1))
        pd = np.take_along_axis(d, part, axis=1)
        if metric == "euclidean":
            pd = np.linalg.norm(qs[:, None, :] - b[part], axis=2)
        order = np.lexsort((part, pd), axis=1)  # by distance, then by index
        idx[s:s + step] = np.take_along_axis(part, order, axis=1)
        dist[s:s + step] = np.take_along_axis(pd, order, axis=1)
    return idx, dist


def pca(feats, dims: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Project onto the ``dims`` directions of largest variance: (points (N, dims), the
    fraction of the total variance each explains). From the SVD of the centred data; each
    component's sign is fixed so that its largest-magnitude loading is positive, so the
    same data always gives the same picture.

    >>> pts, ratio = pca(np.array([[0.0, 0.0], [2.0, 0.1], [4.0, 0.0]]), dims=1)
    >>> pts.ravel().round(2).tolist(), round(float(ratio[0]), 3)
    ([-2.0, 0.0, 2.0], 0.999)
    """
    x = _as_feats(feats, "feats")
    n, d = x.shape
    if isinstance(dims, bool) or int(dims) != dims or not 1 <= dims <= min(n, d):
        raise ValueError(f"dims must be between 1 and min(N, D) = {min(n, d)} for features "
                         f"of shape {x.shape}, got {dims!r}")
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[: int(dims)]
    lead = comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)]
    comps = comps * np.where(lead < 0, -1.0, 1.0)[:, None]
    var = s * s
    total = var.sum()
    ratio = var[: int(dims)] / total if total > 0 else np.zeros(int(dims))
    return centred @ comps.T, ratio


def embed(feats, method: str = "pca", seed: int = 0, **kw) -> np.ndarray:
    """2-D points (N, 2) for a picture of the feature space: "pca" (``pca``) or "tsne"
    (scikit-learn's TSNE, the optional extra ``convnetpy[tsne]``; features wider than 50
    are first reduced to 50 with ``pca``, as van der Maaten advises; perplexity defaults to
    min(30, (N - 1) / 3); its method is "exact" up to ``EXACT_TSNE`` points, else
    "barnes_hut", or ``tsne_method``; other ``kw`` go to TSNE)."""
    x = _as_feats(feats, "feats")
    if method == "pca":
        if kw:
            raise ValueError(f"pca takes no options, got {sorted(kw)}")
        return pca(x, 2)[0]
    if method != "tsne":
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
    try:
        from sklearn.manifold import TSNE
    except ImportError as e:
        raise ImportError(TSNE_HINT) from e
    if len(x) < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {len(x)}")
    if x.shape[1] > 50:
        x = pca(x, min(50, len(x)))[0]
    kw.setdefault("perplexity", min(30.0, (len(x) - 1) / 3))
    kw.setdefault("init", "pca")
    # sklearn's Barnes-Hut costs seconds to start; the exact gradient is faster up to a few
    # hundred points
    how = kw.pop("tsne_method", "exact" if len(x) <= EXACT_TSNE else "barnes_hut")
    return TSNE(n_components=2, random_state=seed, method=how, **kw).fit_transform(x)
