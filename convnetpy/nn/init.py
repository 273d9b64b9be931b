"""Weight initialisation, with torch.nn.init's names, formulas and defaults.

Values are drawn from convnetpy's generator (``convnetpy.manual_seed``), so they are
reproducible but not the same numbers PyTorch draws.

>>> import convnetpy as cp
>>> from convnetpy.nn import init
>>> w = cp.zeros(16, 3, 5, 5)
>>> _ = init.kaiming_uniform_(w, a=5 ** 0.5)   # Conv2d's default: bound = 1/sqrt(fan_in)
>>> bool(abs(w.numpy()).max() <= 1 / (3 * 25) ** 0.5)
True
"""

from __future__ import annotations

import math

import numpy as np

from ..random import default_generator
from ..tensor import Tensor


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"negative_slope {slope} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         "dimensions")
    receptive = int(np.prod(tensor.shape[2:], dtype=np.int64)) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    tensor.data[...] = values.astype(tensor.dtype, copy=False)
    return tensor


def _draw(tensor: Tensor, method: str) -> np.ndarray:
    """Draw into the tensor's own array when the generator can (float32/float64,
    contiguous): no temporary the size of a VGG layer."""
    arr = tensor.data
    rng = default_generator()
    if arr.dtype in (np.float32, np.float64) and arr.flags.c_contiguous:
        getattr(rng, method)(dtype=arr.dtype, out=arr)
    else:
        arr[...] = getattr(rng, method)(arr.shape)
    return arr


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    arr = _draw(tensor, "random")
    arr *= b - a
    arr += a
    return tensor


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    arr = _draw(tensor, "standard_normal")
    arr *= std
    arr += mean
    return tensor


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0) -> Tensor:
    """Normal(mean, std) redrawn until inside [a, b] (rejection sampling)."""
    rng, out = default_generator(), np.empty(tensor.shape)
    flat, todo = out.reshape(-1), np.arange(out.size)
    while todo.size:
        draw = rng.normal(mean, std, todo.size)
        ok = (draw >= a) & (draw <= b)
        flat[todo[ok]] = draw[ok]
        todo = todo[~ok]
    return _fill(tensor, out)


def constant_(tensor: Tensor, val: float) -> Tensor:
    tensor.data[...] = val
    return tensor


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound)


def default_weight_bias_(weight: Tensor, bias: Tensor | None) -> None:
    """PyTorch's default initialisation of Linear and Conv layers: kaiming_uniform_ with
    a=sqrt(5) on the weight (i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in))), and the same bound on
    the bias."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """The identity for a convolution: in each of ``groups`` groups, filter i passes input
    channel i through at the kernel's centre (all else zero), so a ``padding='same'``
    conv starts as the identity on its first min(out, in) channels (torch.nn.init.dirac_).
    The fast-CIFAR recipes start their 3x3 convs this way.

    >>> import convnetpy as cp
    >>> w = cp.zeros(4, 2, 3, 3)
    >>> _ = dirac_(w)
    >>> w.numpy()[:, :, 1, 1].tolist()
    [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
    """
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_ needs a 3, 4 or 5-dimensional convolution weight, got "
                         f"{tensor.ndim} dimensions")
    out = tensor.shape[0]
    if not isinstance(groups, int) or groups < 1 or out % groups:
        raise ValueError(f"dirac_: the {out} filters cannot be split into {groups!r} groups")
    per = out // groups
    values = np.zeros(tensor.shape, dtype=tensor.dtype)
    centre = tuple(k // 2 for k in tensor.shape[2:])
    for g in range(groups):
        for i in range(min(per, tensor.shape[1])):
            values[(g * per + i, i) + centre] = 1
    return _fill(tensor, values)


def whiten_(weight: Tensor, images: np.ndarray, eps: float = 5e-4) -> Tensor:
    """Patch-whitening initialisation of a first convolution's ``weight`` (O, C, KH, KW)
    from training ``images`` (N, C, H, W), as airbench does: the covariance of every
    KHxKW patch of the images is diagonalised, and filter i is its i-th eigenvector (by
    decreasing eigenvalue) divided by sqrt(eigenvalue + eps), the second half of the
    filters the negatives of the first (so a ReLU after it keeps both signs). The output
    of the first half on the images' patches then has about unit variance in each of the
    O/2 leading directions. O must be even and O/2 at most C*KH*KW; pass the images as
    the model sees them (normalised). Often followed by freezing the weight.

    >>> import numpy as np, convnetpy as cp
    >>> from convnetpy import nn
    >>> conv = nn.Conv2d(3, 24, kernel_size=2)
    >>> imgs = np.random.default_rng(0).standard_normal((64, 3, 8, 8)).astype(np.float32)
    >>> _ = whiten_(conv.weight, imgs)
    >>> np.allclose(conv.weight.numpy()[12:], -conv.weight.numpy()[:12])
    True
    """
    o, c, kh, kw = weight.shape
    images = np.asarray(images.data if isinstance(images, Tensor) else images)
    if images.ndim != 4 or images.shape[1] != c:
        raise ValueError(f"whiten_: images must be (N, {c}, H, W) for a weight of shape "
                         f"{tuple(weight.shape)}, got {images.shape}")
    k = c * kh * kw
    if o % 2 or o // 2 > k:
        raise ValueError(f"whiten_: the weight's {o} filters must be an even number, at most "
                         f"2 * C*KH*KW = {2 * k} (eigenvectors and their negatives)")
    windows = np.lib.stride_tricks.sliding_window_view(images, (kh, kw), axis=(2, 3))
    # (N, C, OH, OW, KH, KW) -> one row per patch, in the weight's (C, KH, KW) order
    patches = windows.transpose(0, 2, 3, 1, 4, 5).reshape(-1, k).astype(np.float64)
    cov = patches.T @ patches / len(patches)
    values, vectors = np.linalg.eigh(cov)  # ascending
    order = np.argsort(values)[::-1][: o // 2]
    filters = (vectors[:, order] / np.sqrt(values[order] + eps)).T.reshape(o // 2, c, kh, kw)
    weight.data[...] = np.concatenate([filters, -filters]).astype(weight.data.dtype)
    return weight
