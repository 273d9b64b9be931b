"""The lecture's arithmetic, in one public place: output sizes, 'same' padding, the
receptive-field step of a window, parameter counts, and the errors that explain a shape with
them.

Kernels, layers, the summary, the calculator and every error message call these functions,
so a size is computed one way everywhere; users can call them too. Semantics follow PyTorch:
sizes are floored, and pooling with ``ceil_mode`` drops a last window that would start in
the right padding.

Shape:
    H_out = floor((H_in + 2*P - D*(K-1) - 1) / S) + 1

>>> from convnetpy.shape import conv_output_size, conv_params, same_padding
>>> conv_output_size(32, kernel=5, stride=1, padding=2)
32
>>> conv_output_size(227, kernel=11, stride=4)
55
>>> pool_output_size(5, kernel=2, stride=2, ceil_mode=True)
3
>>> conv_params(3, 10, kernel_size=5)  # (F*F*C_in + 1)*K
760
>>> same_padding(3)
(1, 1)
"""

from __future__ import annotations

from typing import Any

from .checks import _given, _is_int, _kind


class ShapeError(ValueError):
    """A shape that a layer cannot take, explained with the arithmetic.

    ``op`` names the operation (``conv2d``), ``detail`` says what was wrong. A module that
    catches it on its way up fills ``module`` (its one-line description) and ``path`` (where it
    sits in the model, e.g. ``features.0``), and the message becomes
    ``Conv2d(3, 16, kernel_size=(5, 5), ...) at features.0: <detail>``.
    """

    def __init__(self, op: str, detail: str) -> None:
        super().__init__(detail)
        self.op = op
        self.detail = detail
        self.module: Any = None
        self.module_desc: str | None = None
        self.path: str | None = None

    def __str__(self) -> str:
        who = self.module_desc or self.op
        if self.path:
            who += f" at {self.path}"
        return f"{who}: {self.detail}"


def pair(value: Any, name: str, allow_zero: bool = False, op: str | None = None,
         allow_none: bool = False) -> tuple[int, int]:
    """Turn an int or a 2-sequence of ints into a pair, validating it: each entry an integer
    (not a bool) that is positive (non-negative with ``allow_zero``); with ``allow_none`` an
    entry of a pair may be None (an adaptive pool's output size keeps that input size).
    ``op`` names the layer or function in the message.

    >>> pair(3, "kernel_size")
    (3, 3)
    >>> pair((1, 2), "stride")
    (1, 2)
    >>> pair(0, "stride", op="Conv2d")
    Traceback (most recent call last):
    ValueError: Conv2d(stride=0): stride must be positive, got 0
    """
    who = _given(op, name, value)
    if _is_int(value):
        out = (value, value)
    elif isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{who}{name} must be an int or a pair of ints, got {_kind(value)}")
    else:
        out = tuple(value)
        if not all(_is_int(v) or (allow_none and v is None) for v in out):
            raise TypeError(f"{who}{name} must be an int or a pair of ints, got {value!r}")
        if len(out) == 1:
            out = (out[0], out[0])
        if len(out) != 2:
            raise ValueError(f"{who}{name} must be an int or a pair of ints, got {value!r}")
    low = 0 if allow_zero else 1
    if any(v is not None and v < low for v in out):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{who}{name} must be {bound}, got {value!r}")
    return tuple(None if v is None else int(v) for v in out)  # type: ignore[return-value]


def same_padding(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """Padding (before, after) that keeps the size with stride 1, split as PyTorch does.

    The total is D*(K-1); an odd total puts the extra pixel after (right/bottom).

    >>> same_padding(3)
    (1, 1)
    >>> same_padding(4)
    (1, 2)
    """
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int | tuple[int, int] = 0,
    dilation: int = 1,
) -> int:
    """Output length of a convolution along one axis (PyTorch floor semantics):
    floor((size + P_before + P_after - D*(K-1) - 1) / S) + 1.

    ``padding`` is one number (each side) or (before, after); the result may be <= 0 when
    the kernel does not fit (``check_conv_axis`` explains that case).
    """
    before, after = (padding, padding) if isinstance(padding, int) else padding
    span = dilation * (kernel - 1) + 1
    return (size + before + after - span) // stride + 1


def conv_size_formula(
    size: int, kernel: int, stride: int, padding: tuple[int, int], dilation: int
) -> str:
    """The size formula with numbers filled in, as the lecture writes it.

    >>> conv_size_formula(32, 5, 2, (0, 0), 1)
    '(32 + 2*0 - 5)/2 + 1 = 14.5'
    """
    pad = f"2*{padding[0]}" if padding[0] == padding[1] else f"{padding[0]}+{padding[1]}"
    span = dilation * (kernel - 1) + 1
    k = str(kernel) if dilation == 1 else f"({dilation}*({kernel}-1)+1)"
    exact = (size + padding[0] + padding[1] - span) / stride + 1
    shown = f"{exact:g}" if exact != int(exact) else str(int(exact))
    return f"({size} + {pad} - {k})/{stride} + 1 = {shown}"


def check_conv_axis(
    op: str, axis: str, size: int, kernel: int, stride: int, padding: tuple[int, int],
    dilation: int,
) -> int:
    """Output length along one axis, or a ShapeError that explains why there is none."""
    out = conv_output_size(size, kernel, stride, padding, dilation)
    span = dilation * (kernel - 1) + 1
    padded = size + padding[0] + padding[1]
    if out <= 0 or span > padded:
        raise ShapeError(
            op,
            f"output {axis} {conv_size_formula(size, kernel, stride, padding, dilation)} is not "
            f"positive: the (dilated) kernel {axis} {span} is larger than the padded input "
            f"{axis} {padded} ({size} + padding {padding[0] + padding[1]}). "
            + _fit_fixes(axis, size, kernel, padding[0] + padding[1], dilation),
        )
    return out


def _fit_fixes(axis: str, size: int, kernel: int, pad_total: int, dilation: int) -> str:
    """Concrete settings under which a window fits the input."""
    span = dilation * (kernel - 1) + 1
    fixes = [f"padding={-(-(span - size) // 2)}"]
    kmax = (size + pad_total - 1) // dilation + 1
    if kmax >= 1:
        fixes.append(f"kernel_size={kmax}" + (" (or smaller)" if kmax > 1 else ""))
    fixes.append(f"an input {axis} of at least {span - pad_total}")
    return "Use " + ", ".join(fixes[:-1]) + f" or {fixes[-1]}."


def inexact_note(
    axis: str, size: int, kernel: int, stride: int, padding: tuple[int, int], dilation: int = 1,
) -> str | None:
    """None when the windows cover the padded input exactly; otherwise how many border
    pixels are dropped (the engine floors, as PyTorch) and settings that cover it exactly.

    >>> inexact_note("width", 10, 3, 2, (0, 0))
    'output width (10 + 2*0 - 3)/2 + 1 = 4.5 is not an integer; the last 1 column of the \
input is dropped. Use kernel_size=2 or 4, stride=1 or padding=(0, 1) to cover it exactly.'
    """
    span = dilation * (kernel - 1) + 1
    rem = (size + padding[0] + padding[1] - span) % stride
    if rem == 0 or size + padding[0] + padding[1] < span:
        return None
    unit = "row" if axis == "height" else "column"
    lost = max(rem - padding[1], 0)  # the leftover may be only right/bottom padding
    if lost == 0:
        return (f"output {axis} {conv_size_formula(size, kernel, stride, padding, dilation)} "
                f"is not an integer; only the last {rem} padding {unit}{'s' if rem > 1 else ''} "
                f"{'are' if rem > 1 else 'is'} unused, no input pixel is dropped (padding="
                f"({padding[0]}, {padding[1] - rem}) would cover it exactly).")
    fixes = []
    excess = size + padding[0] + padding[1] - span
    ks = [k for k in (kernel - 1, kernel + 1, kernel - 2, kernel + 2) if k >= 1
          and dilation * (k - 1) + 1 <= size + padding[0] + padding[1]
          and (size + padding[0] + padding[1] - dilation * (k - 1) - 1) % stride == 0]
    if ks:
        fixes.append("kernel_size=" + " or ".join(str(k) for k in sorted(ks[:2])))
    best_stride = max(s for s in range(1, stride) if excess % s == 0)
    fixes.append(f"stride={best_stride}")
    extra = stride - rem  # pixels of padding to add so the last window fits
    sym = [p for p in range(padding[0] + 1, padding[0] + stride + 1)
           if (size + 2 * p - span) % stride == 0]
    if sym and padding[0] == padding[1]:
        fixes.append(f"padding={sym[0]}")
    else:
        fixes.append(f"padding=({padding[0]}, {padding[1] + extra})")
    return (f"output {axis} {conv_size_formula(size, kernel, stride, padding, dilation)} is not "
            f"an integer; the last {lost} {unit}{'s' if lost > 1 else ''} of the input "
            f"{'are' if lost > 1 else 'is'} dropped. Use {', '.join(fixes[:-1])} or {fixes[-1]} "
            "to cover it exactly.")


def pool_output_size(
    size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of a pooling window along one axis, exactly as PyTorch computes it.

    With ``ceil_mode`` the size is rounded up, but a last window that would start inside the
    right padding (or past it) is dropped.
    """
    span = dilation * (kernel - 1) + 1
    num = size + 2 * padding - span + (stride - 1 if ceil_mode else 0)
    out = num // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def check_pool_axis(
    op: str, axis: str, size: int, kernel: int, stride: int, padding: int, dilation: int,
    ceil_mode: bool,
) -> int:
    """Validate a pooling configuration along one axis the way PyTorch does; return its size."""
    span = dilation * (kernel - 1) + 1
    check_pool_padding(op, (kernel,), (padding,), (dilation,), (axis,))
    out = pool_output_size(size, kernel, stride, padding, dilation, ceil_mode)
    if out <= 0:
        formula = conv_size_formula(size, kernel, stride, (padding, padding), dilation)
        raise ShapeError(
            op,
            f"output {axis} {formula} is too small: the window {axis} {span} is larger than "
            f"the padded input {axis} {size + 2 * padding}. "
            + _fit_fixes(axis, size, kernel, 2 * padding, dilation),
        )
    return out


def check_pool_padding(op: str, kernel: tuple[int, ...], padding: tuple[int, ...],
                       dilation: tuple[int, ...] = (1, 1),
                       axes: tuple[str, ...] = ("height", "width")) -> None:
    """PyTorch's rule for a pooling window: padding at most half of the effective kernel
    D*(K-1)+1 along each axis; a ShapeError otherwise (checked by layers at construction).

    >>> check_pool_padding("MaxPool2d(kernel_size=3, padding=2)", (3, 3), (2, 2))
    Traceback (most recent call last):
    convnetpy.shape.ShapeError: MaxPool2d(kernel_size=3, padding=2): padding 2 should be at \
most half of the effective kernel size 3 (kernel 3, dilation 1) along the height
    """
    for axis, k, p, d in zip(axes, kernel, padding, dilation):
        span = d * (k - 1) + 1
        if p * 2 > span:
            raise ShapeError(op, f"padding {p} should be at most half of the effective kernel "
                                 f"size {span} (kernel {k}, dilation {d}) along the {axis}")


def pool_args(op: str, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1,
              ) -> tuple[tuple[int, int], ...]:
    """A pooling window's (kernel, stride, padding, dilation) pairs, validated as PyTorch
    has them: stride None (or []) is the kernel, padding at most half the kernel.

    >>> pool_args("MaxPool2d", 3, None, 1)
    ((3, 3), (3, 3), (1, 1), (1, 1))
    """
    k = pair(kernel_size, "kernel_size", op=op)
    no_stride = stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)
    s = k if no_stride else pair(stride, "stride", op=op)
    p, d = pair(padding, "padding", True, op), pair(dilation, "dilation", op=op)
    dil = f", dilation={dilation!r}" if d != (1, 1) else ""
    check_pool_padding(f"{op}(kernel_size={kernel_size!r}, padding={padding!r}{dil})", k, p, d)
    return k, s, p, d


def adaptive_bins(size: int, out: int) -> tuple[list[int], list[int]]:
    """PyTorch's adaptive-pooling bin boundaries: start = floor(i*size/out),
    end = ceil((i+1)*size/out). Bins may overlap when size is not a multiple of out.

    >>> adaptive_bins(5, 3)
    ([0, 1, 3], [2, 4, 5])
    """
    starts = [(i * size) // out for i in range(out)]
    ends = [-((-(i + 1) * size) // out) for i in range(out)]
    return starts, ends


def resolve_conv_padding(
    padding: Any, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
    op: str | None = None,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Turn a conv ``padding`` argument (int, pair, 'valid', 'same') into per-side padding
    ((top, bottom), (left, right)), with PyTorch's rules for 'same'; ``op`` names the caller
    in an error.

    >>> resolve_conv_padding("same", (4, 3), (1, 1), (1, 1))
    ((1, 2), (1, 1))
    """
    if isinstance(padding, str):
        who = _given(op, "padding", padding)
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"{who}padding='same' is not supported for strided convolutions (stride="
                    f"{stride}); use an explicit padding instead"
                )
            return (same_padding(kernel[0], dilation[0]), same_padding(kernel[1], dilation[1]))
        raise ValueError(
            f"{who}Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}"
        )
    ph, pw = pair(padding, "padding", allow_zero=True, op=op)
    return (ph, ph), (pw, pw)


# a receptive field per axis (height, width): size, jump (the distance in input pixels between
# neighbouring units) and start (the centre of the first unit, in input pixel coordinates)
ReceptiveField = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
INPUT_RF: ReceptiveField = ((1, 1), (1, 1), (0.5, 0.5))


def receptive_field_step(
    rf: ReceptiveField, kernel: tuple[int, int], stride: tuple[int, int],
    pad_before: tuple[int, int], dilation: tuple[int, int] = (1, 1),
) -> ReceptiveField:
    """The receptive field after one window (convolution or pooling): per axis
    size' = size + (D*(K-1)) * jump, jump' = jump * S,
    start' = start + (D*(K-1)/2 - P_before) * jump.

    >>> rf = receptive_field_step(INPUT_RF, (3, 3), (1, 1), (1, 1))
    >>> receptive_field_step(rf, (2, 2), (2, 2), (0, 0))[:2]
    ((4, 4), (2, 2))
    """
    size, jump, start = rf
    out = []
    for ax in range(2):
        k = dilation[ax] * (kernel[ax] - 1) + 1
        out.append((size[ax] + (k - 1) * jump[ax], jump[ax] * stride[ax],
                    start[ax] + ((k - 1) / 2 - pad_before[ax]) * jump[ax]))
    return tuple(zip(*out))  # type: ignore[return-value]


def conv_params(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                groups: int = 1, bias: bool = True) -> int:
    """Parameters of a convolution: (F_h*F_w*C_in/groups + 1)*K (no +1 without a bias).

    >>> conv_params(96, 256, 5, groups=2)
    307456
    """
    kh, kw = pair(kernel_size, "kernel_size")
    return (kh * kw * (in_channels // groups) + (1 if bias else 0)) * out_channels


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Parameters of a fully-connected layer: (in + 1)*out (in*out without a bias).

    >>> linear_params(400, 120)
    48120
    """
    return (in_features + (1 if bias else 0)) * out_features


def conv_params_formula(in_channels: int, out_channels: int,
                        kernel_size: int | tuple[int, int], groups: int = 1,
                        bias: bool = True) -> str:
    """``conv_params`` with its numbers filled in, as the lecture writes it.

    >>> conv_params_formula(3, 10, 5)
    '(5*5*3 + 1) * 10 = 760'
    """
    kh, kw = pair(kernel_size, "kernel_size")
    total = conv_params(in_channels, out_channels, (kh, kw), groups, bias)
    return (f"({kh}*{kw}*{in_channels // groups} + {1 if bias else 0}) * {out_channels} "
            f"= {total:,}")


def linear_params_formula(in_features: int, out_features: int, bias: bool = True) -> str:
    """``linear_params`` with its numbers filled in.

    >>> linear_params_formula(400, 120)
    '(400 + 1) * 120 = 48,120'
    """
    total = linear_params(in_features, out_features, bias)
    return f"({in_features} + {1 if bias else 0}) * {out_features} = {total:,}"


__all__ = [
    "ShapeError", "pair", "same_padding", "conv_output_size", "conv_size_formula",
    "check_conv_axis", "pool_output_size", "check_pool_axis", "check_pool_padding",
    "pool_args", "adaptive_bins", "resolve_conv_padding", "inexact_note", "ReceptiveField",
    "INPUT_RF", "conv_params_formula", "linear_params_formula", "receptive_field_step",
    "conv_params", "linear_params",
]
