"""Slow, obviously-correct float64 loop references for every kernel (forward and backward).

Each loops over output positions (and window offsets) in plain Python and follows the
definition of the operation, not the vectorised kernel's arithmetic, so that the two can be
compared. Only for tiny inputs.
"""

from __future__ import annotations

import math

import numpy as np


# ---------------------------------------------------------------- output sizes
def out_size(n, k, s, p_total, d=1, ceil=False):
    num = n + p_total - d * (k - 1) - 1
    q = -(-num // s) if ceil else num // s
    return q + 1


# ---------------------------------------------------------------- convolution
def conv2d(x, w, b, stride, pads, dilation, groups):
    """Returns out, and a function dout -> (dx, dw, db)."""
    (pt, pb), (pl, pr) = pads
    sh, sw = stride
    dh, dw_ = dilation
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    xp = np.zeros((n, c, h + pt + pb, wd + pl + pr))
    xp[:, :, pt:pt + h, pl:pl + wd] = x
    oh = out_size(h, kh, sh, pt + pb, dh)
    ow = out_size(wd, kw, sw, pl + pr, dw_)
    out = np.zeros((n, o, oh, ow))
    for ni in range(n):
        for oi in range(o):
            g = oi // og
            cs = slice(g * cg, (g + 1) * cg)
            for i in range(oh):
                rows = i * sh + np.arange(kh) * dh
                for j in range(ow):
                    cols = j * sw + np.arange(kw) * dw_
                    win = xp[ni, cs][:, rows][:, :, cols]
                    out[ni, oi, i, j] = np.sum(win * w[oi]) + (b[oi] if b is not None else 0.0)

    def backward(dout):
        dxp = np.zeros_like(xp)
        dwt = np.zeros_like(w)
        for ni in range(n):
            for oi in range(o):
                g = oi // og
                for i in range(oh):
                    rows = i * sh + np.arange(kh) * dh
                    for j in range(ow):
                        cols = j * sw + np.arange(kw) * dw_
                        gval = dout[ni, oi, i, j]
                        for ci in range(cg):
                            win = xp[ni, g * cg + ci][np.ix_(rows, cols)]
                            dwt[oi, ci] += gval * win
                            dxp[ni, g * cg + ci][np.ix_(rows, cols)] += gval * w[oi, ci]
        db = dout.sum(axis=(0, 2, 3)) if b is not None else None
        return dxp[:, :, pt:pt + h, pl:pl + wd], dwt, db

    return out, backward


# ---------------------------------------------------------------- pooling
def _pool_windows(h, w, kernel, stride, padding, dilation, ceil):
    oh = out_size(h, kernel[0], stride[0], 2 * padding[0], dilation[0], ceil)
    ow = out_size(w, kernel[1], stride[1], 2 * padding[1], dilation[1], ceil)
    if ceil and (oh - 1) * stride[0] >= h + padding[0]:
        oh -= 1
    if ceil and (ow - 1) * stride[1] >= w + padding[1]:
        ow -= 1
    return oh, ow


def max_pool2d(x, kernel, stride, padding, dilation, ceil):
    n, c, h, w = x.shape
    oh, ow = _pool_windows(h, w, kernel, stride, padding, dilation, ceil)
    out = np.zeros((n, c, oh, ow))
    idx = np.zeros((n, c, oh, ow), dtype=np.int64)
    for ni in range(n):
        for ci in range(c):
            for i in range(oh):
                for j in range(ow):
                    best, arg = -math.inf, -1
                    for a in range(kernel[0]):
                        for bb in range(kernel[1]):
                            r = i * stride[0] - padding[0] + a * dilation[0]
                            q = j * stride[1] - padding[1] + bb * dilation[1]
                            if 0 <= r < h and 0 <= q < w:
                                v = x[ni, ci, r, q]
                                if arg < 0 or v > best:  # first maximum wins ties
                                    best, arg = v, r * w + q
                    out[ni, ci, i, j], idx[ni, ci, i, j] = best, arg

    def backward(dout):
        dx = np.zeros_like(x)
        for ni in range(n):
            for ci in range(c):
                for i in range(oh):
                    for j in range(ow):
                        if idx[ni, ci, i, j] >= 0:  # -1: the window is all padding
                            r, q = divmod(int(idx[ni, ci, i, j]), w)
                            dx[ni, ci, r, q] += dout[ni, ci, i, j]
        return dx

    return out, idx, backward


def avg_pool2d(x, kernel, stride, padding, ceil, count_include_pad, divisor_override):
    """PyTorch's definition: a window is clipped at input+padding for the divisor when
    count_include_pad, and at the input otherwise."""
    n, c, h, w = x.shape
    oh, ow = _pool_windows(h, w, kernel, stride, padding, (1, 1), ceil)
    out = np.zeros((n, c, oh, ow))
    spans = {}
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * stride[0] - padding[0], j * stride[1] - padding[1]
            h1, w1 = min(h0 + kernel[0], h + padding[0]), min(w0 + kernel[1], w + padding[1])
            pool = (h1 - h0) * (w1 - w0)
            h0c, w0c, h1c, w1c = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            if divisor_override:
                div = divisor_override
            elif count_include_pad:
                div = pool
            else:
                div = (h1c - h0c) * (w1c - w0c)
            spans[i, j] = (h0c, h1c, w0c, w1c, div)
            for ni in range(n):
                for ci in range(c):
                    out[ni, ci, i, j] = x[ni, ci, h0c:h1c, w0c:w1c].sum() / div

    def backward(dout):
        dx = np.zeros_like(x)
        for (i, j), (h0, h1, w0, w1, div) in spans.items():
            dx[:, :, h0:h1, w0:w1] += (dout[:, :, i, j] / div)[:, :, None, None]
        return dx

    return out, backward


def _bins(size, out):
    return [(math.floor(i * size / out), math.ceil((i + 1) * size / out)) for i in range(out)]


def adaptive_avg_pool2d(x, osize):
    n, c, h, w = x.shape
    hb, wb = _bins(h, osize[0]), _bins(w, osize[1])
    out = np.zeros((n, c) + tuple(osize))
    for i, (h0, h1) in enumerate(hb):
        for j, (w0, w1) in enumerate(wb):
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))

    def backward(dout):
        dx = np.zeros_like(x)
        for i, (h0, h1) in enumerate(hb):
            for j, (w0, w1) in enumerate(wb):
                cnt = (h1 - h0) * (w1 - w0)
                dx[:, :, h0:h1, w0:w1] += (dout[:, :, i, j] / cnt)[:, :, None, None]
        return dx

    return out, backward


def adaptive_max_pool2d(x, osize):
    n, c, h, w = x.shape
    hb, wb = _bins(h, osize[0]), _bins(w, osize[1])
    out = np.zeros((n, c) + tuple(osize))
    idx = np.zeros((n, c) + tuple(osize), dtype=np.int64)
    for ni in range(n):
        for ci in range(c):
            for i, (h0, h1) in enumerate(hb):
                for j, (w0, w1) in enumerate(wb):
                    best, arg = -math.inf, -1
                    for r in range(h0, h1):
                        for q in range(w0, w1):
                            if arg < 0 or x[ni, ci, r, q] > best:
                                best, arg = x[ni, ci, r, q], r * w + q
                    out[ni, ci, i, j], idx[ni, ci, i, j] = best, arg

    def backward(dout):
        dx = np.zeros_like(x)
        for ni in range(n):
            for ci in range(c):
                for i in range(osize[0]):
                    for j in range(osize[1]):
                        r, q = divmod(int(idx[ni, ci, i, j]), w)
                        dx[ni, ci, r, q] += dout[ni, ci, i, j]
        return dx

    return out, idx, backward


# ---------------------------------------------------------------- padding
def _src(i, size, mode):
    if mode == "reflect":
        while i < 0 or i >= size:
            i = -i if i < 0 else 2 * (size - 1) - i
        return i
    if mode == "replicate":
        return min(max(i, 0), size - 1)
    return i % size  # circular


def pad(x, p, mode, value=0.0):
    left, right, top, bottom = p
    h, w = x.shape[-2:]
    oh, ow = h + top + bottom, w + left + right
    out = np.full(x.shape[:-2] + (oh, ow), float(value))
    src = {}
    for i in range(oh):
        for j in range(ow):
            r, q = i - top, j - left
            if mode == "constant":
                if 0 <= r < h and 0 <= q < w:
                    src[i, j] = (r, q)
            else:
                src[i, j] = (_src(r, h, mode), _src(q, w, mode))
    for (i, j), (r, q) in src.items():
        out[..., i, j] = x[..., r, q]

    def backward(dout):
        dx = np.zeros_like(x)
        for (i, j), (r, q) in src.items():
            dx[..., r, q] += dout[..., i, j]
        return dx

    return out, backward


# ---------------------------------------------------------------- linear, activations
def linear(x, w, b):
    out = np.zeros(x.shape[:-1] + (w.shape[0],))
    flat_x, flat_o = x.reshape(-1, x.shape[-1]), out.reshape(-1, w.shape[0])
    for r in range(flat_x.shape[0]):
        for o in range(w.shape[0]):
            flat_o[r, o] = sum(flat_x[r, i] * w[o, i] for i in range(w.shape[1])) + (
                b[o] if b is not None else 0.0)

    def backward(dout):
        d = dout.reshape(-1, w.shape[0])
        dx = np.zeros_like(flat_x)
        dw = np.zeros_like(w)
        for r in range(d.shape[0]):
            for o in range(w.shape[0]):
                dx[r] += d[r, o] * w[o]
                dw[o] += d[r, o] * flat_x[r]
        return dx.reshape(x.shape), dw, (d.sum(axis=0) if b is not None else None)

    return out, backward


_K = math.sqrt(2 / math.pi)  # the tanh approximation of GELU


def elementwise(name, x, slope=0.01):
    f = {
        "relu": (lambda v: max(v, 0.0), lambda v: 1.0 if v > 0 else 0.0),
        "leaky_relu": (lambda v: v if v > 0 else slope * v, lambda v: 1.0 if v > 0 else slope),
        "sigmoid": (lambda v: 1 / (1 + math.exp(-v)),
                    lambda v: math.exp(-v) / (1 + math.exp(-v)) ** 2),
        "tanh": (math.tanh, lambda v: 1 - math.tanh(v) ** 2),
        # x Phi(x) and its derivative Phi(x) + x phi(x), from the normal CDF's definition
        "gelu": (lambda v: v * 0.5 * math.erfc(-v / math.sqrt(2)),
                 lambda v: 0.5 * math.erfc(-v / math.sqrt(2))
                 + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)),
        "gelu_tanh": (lambda v: 0.5 * v * (1 + math.tanh(_K * (v + 0.044715 * v ** 3))),
                      lambda v: 0.5 * (1 + math.tanh(_K * (v + 0.044715 * v ** 3)))
                      + 0.5 * v * (1 - math.tanh(_K * (v + 0.044715 * v ** 3)) ** 2)
                      * _K * (1 + 3 * 0.044715 * v * v)),
    }[name]
    out = np.vectorize(f[0], otypes=[float])(x)
    deriv = np.vectorize(f[1], otypes=[float])(x)
    return out, lambda dout: dout * deriv


# ---------------------------------------------------------------- batch norm
def batch_norm_train(x, gamma, beta, eps):
    """Per channel, with an explicit Jacobian of the normalisation."""
    c = x.shape[1]
    xt = np.moveaxis(x, 1, 0).reshape(c, -1)
    n = xt.shape[1]
    out = np.zeros_like(xt)
    jac, xhats = [], []
    for ci in range(c):
        v = xt[ci]
        mu = sum(v) / n
        var = sum((vi - mu) ** 2 for vi in v) / n
        sd = math.sqrt(var + eps)
        xhat = (v - mu) / sd
        out[ci] = gamma[ci] * xhat + beta[ci]
        # d xhat_i / d x_j = (delta_ij - 1/n)/sd - (x_i - mu)(x_j - mu)/(n sd^3)
        jac.append((np.eye(n) - 1.0 / n) / sd - np.outer(v - mu, v - mu) / (n * sd ** 3))
        xhats.append(xhat)
    shape = (c,) + x.shape[:1] + x.shape[2:]
    out_x = np.moveaxis(out.reshape(shape), 0, 1)

    def backward(dout):
        dt = np.moveaxis(dout, 1, 0).reshape(c, -1)
        dx = np.zeros_like(dt)
        for ci in range(c):
            dx[ci] = jac[ci].T @ (dt[ci] * gamma[ci])
        dgamma = np.array([np.dot(dt[ci], xhats[ci]) for ci in range(c)])
        return np.moveaxis(dx.reshape(shape), 0, 1), dgamma, dt.sum(axis=1)

    return out_x, backward


# ---------------------------------------------------------------- softmax and losses
def log_softmax_rows(x):
    """Classes on the last axis; returns out and backward via the explicit Jacobian."""
    rows = x.reshape(-1, x.shape[-1])
    out = np.zeros_like(rows)
    sm = np.zeros_like(rows)
    for r in range(rows.shape[0]):
        m = max(rows[r])
        lse = m + math.log(sum(math.exp(v - m) for v in rows[r]))
        out[r] = rows[r] - lse
        sm[r] = np.exp(out[r])

    def backward(dout):
        d = dout.reshape(rows.shape)
        dx = np.zeros_like(rows)
        for r in range(rows.shape[0]):
            jac = np.eye(rows.shape[1]) - sm[r][None, :]  # d out_i / d x_j
            dx[r] = jac.T @ d[r]
        return dx.reshape(x.shape)

    return out.reshape(x.shape), backward


def softmax_rows(x):
    lp, _ = log_softmax_rows(x)
    s = np.exp(lp).reshape(-1, x.shape[-1])

    def backward(dout):
        d = dout.reshape(s.shape)
        dx = np.zeros_like(s)
        for r in range(s.shape[0]):
            jac = np.diag(s[r]) - np.outer(s[r], s[r])
            dx[r] = jac.T @ d[r]
        return dx.reshape(x.shape)

    return s.reshape(x.shape), backward


def cross_entropy(logits, target, weight, ignore_index, reduction, smoothing):
    """Classes on axis 1; target class indices. Returns loss and d loss / d logits."""
    c = logits.shape[1]
    z = np.moveaxis(logits, 1, -1).reshape(-1, c)
    t = target.reshape(-1)
    w = np.ones(c) if weight is None else weight
    lp, lp_back = log_softmax_rows(z)
    per = np.zeros(len(t))
    dper = np.zeros_like(z)  # d per_i / d logp
    denom = 0.0
    for i, y in enumerate(t):
        if y == ignore_index:
            continue
        denom += w[y]
        per[i] = -(1 - smoothing) * w[y] * lp[i, y] - smoothing / c * sum(
            w[k] * lp[i, k] for k in range(c))
        dper[i, y] -= (1 - smoothing) * w[y]
        dper[i] -= smoothing / c * w
    if reduction == "none":
        loss = per.reshape(target.shape)
        scale = None
    elif reduction == "sum":
        loss, scale = per.sum(), 1.0
    else:
        loss, scale = per.sum() / denom, 1.0 / denom

    def backward(dout):
        g = dper * (dout.reshape(-1, 1) if scale is None else dout * scale)
        dz = lp_back(g)
        return np.moveaxis(dz.reshape(np.moveaxis(logits, 1, -1).shape), -1, 1)

    return loss, backward


def mse(x, t, reduction, weight=None):
    """Returns loss and dout -> (dx, dweight), element by element."""
    w = np.ones_like(x) if weight is None else weight
    d = x - t
    per = np.array([di * di * wi for di, wi in zip(d.ravel(), w.ravel())]).reshape(x.shape)
    if reduction == "none":
        loss = per
    elif reduction == "sum":
        loss = per.sum()
    else:
        loss = per.sum() / w.sum()

    def backward(dout):
        if reduction == "none":
            return 2 * d * w * dout, d * d * dout
        if reduction == "sum":
            return 2 * d * w * dout, d * d * dout
        total = w.sum()
        return 2 * d * w * dout / total, dout * (d * d * total - per.sum()) / total ** 2

    return loss, backward
