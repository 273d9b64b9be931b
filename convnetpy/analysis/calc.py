"""The lecture's layer calculator: output volume and parameters of a CONV or POOL layer,
with the arithmetic written out, W2 = (W1 - F + 2P)/S + 1.

>>> print(conv_calc(32, 32, 3, filters=10, kernel=5, stride=1, pad=2).text)
CONV: input 32x32x3, K=10 filters of 5x5x3, stride S=1, zero-padding P=2
  W2 = (W1 - F + 2P)/S + 1 = (32 - 5 + 2*2)/1 + 1 = 32
  H2 = (H1 - F + 2P)/S + 1 = (32 - 5 + 2*2)/1 + 1 = 32
  D2 = K = 10
  output volume: 32x32x10 (10,240 numbers)
  parameters: (F*F*D1 + 1)*K = (5*5*3 + 1)*10 = 760 (750 weights + 10 biases)
  MACs per image: W2*H2*D2*F*F*D1 = 32*32*10*5*5*3 = 768,000
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..shape import conv_params


@dataclass
class CalcResult:
    fits: bool
    output: tuple[int, int, int] | None  # (W2, H2, D2)
    params: int
    text: str


def _axis(name: str, size: int, kernel: int, stride: int, pad: int) -> tuple[str, int | None,
                                                                             list[str]]:
    sym = {"W": "W1", "H": "H1"}[name]
    head = f"  {name}2 = ({sym} - F + 2P)/S + 1 = ({size} - {kernel} + 2*{pad})/{stride} + 1"
    num = size - kernel + 2 * pad
    if num < 0:
        return (head + f" = {Fraction(num, stride) + 1}: does not fit: the {kernel}x{kernel} "
                f"filter is larger than the padded input ({size} + 2*{pad} = {size + 2 * pad})",
                None, [f"P >= {-(-(kernel - size) // 2)}"])
    q = Fraction(num, stride)
    if q.denominator == 1:
        return head + f" = {int(q) + 1}", int(q) + 1, []
    value = q + 1
    line = (head + f" = {q.numerator}/{q.denominator} + 1 = {value.numerator}/"
            f"{value.denominator} = {float(value):.3g}: does not fit: not an integer")
    fixes = sorted({f"S={s}" for s in range(1, stride) if num % s == 0}
                   | {f"P={p}" for p in range(pad + 1, pad + stride + 1)
                      if (size - kernel + 2 * p) % stride == 0})
    return line, None, fixes


def _window(kind: str, w: int, h: int, d: int, kernel: int, stride: int, pad: int,
            filters: int | None) -> CalcResult:
    for label, v, low in (("input width", w, 1), ("input height", h, 1), ("input depth", d, 1),
                          ("kernel", kernel, 1), ("stride", stride, 1), ("padding", pad, 0)):
        if v < low:
            raise ValueError(f"{label} must be at least {low}, got {v}")
    lines = []
    if filters is None:
        lines.append(f"POOL: input {w}x{h}x{d}, {kernel}x{kernel} windows, stride S={stride}"
                     + (f", padding P={pad}" if pad else ""))
    else:
        lines.append(f"CONV: input {w}x{h}x{d}, K={filters} filters of {kernel}x{kernel}x{d}, "
                     f"stride S={stride}, zero-padding P={pad}")
    wl, w2, wfix = _axis("W", w, kernel, stride, pad)
    hl, h2, hfix = _axis("H", h, kernel, stride, pad)
    lines += [wl, hl]
    d2 = d if filters is None else filters
    lines.append("  D2 = D1 = " + str(d) + " (pooling keeps the depth)" if filters is None
                 else f"  D2 = K = {filters}")
    if filters is None:
        params = 0
    else:
        params = conv_params(d, filters, kernel)
    fits = w2 is not None and h2 is not None
    if fits:
        lines.append(f"  output volume: {w2}x{h2}x{d2} ({w2 * h2 * d2:,} numbers)")
    else:
        fixes = sorted(set(wfix) | set(hfix))
        lines.append(f"  the setting does not fit{': try ' + ', '.join(fixes) if fixes else ''}")
    if filters is None:
        lines.append("  parameters: 0 (pooling has no weights)")
    else:
        lines.append(f"  parameters: (F*F*D1 + 1)*K = ({kernel}*{kernel}*{d} + 1)*{filters} = "
                     f"{params:,} ({params - filters:,} weights + {filters:,} biases)")
        if fits:
            macs = w2 * h2 * filters * kernel * kernel * d
            lines.append(f"  MACs per image: W2*H2*D2*F*F*D1 = {w2}*{h2}*{filters}*{kernel}*"
                         f"{kernel}*{d} = {macs:,}")
    return CalcResult(fits, (w2, h2, d2) if fits else None, params, "\n".join(lines))


def conv_calc(w: int, h: int, d: int, filters: int, kernel: int, stride: int = 1,
              pad: int = 0) -> CalcResult:
    """A CONV layer with K=filters FxF filters on a W1xH1xD1 volume."""
    if filters < 1:
        raise ValueError(f"filters must be at least 1, got {filters}")
    return _window("conv", w, h, d, kernel, stride, pad, filters)


def pool_calc(w: int, h: int, d: int, kernel: int, stride: int | None = None,
              pad: int = 0) -> CalcResult:
    """A POOL layer with FxF windows (stride defaults to F)."""
    return _window("pool", w, h, d, kernel, kernel if stride is None else stride, pad, None)


def parse_volume(text: str) -> tuple[int, int, int]:
    """'32x32x3' -> (32, 32, 3) (width x height x depth, the lecture's order)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        vals = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected a volume like 32x32x3 (width x height x depth), got "
                         f"{text!r}") from None
    if len(vals) != 3:
        raise ValueError(f"expected a volume like 32x32x3 (width x height x depth), got "
                         f"{text!r}")
    return vals  # type: ignore[return-value]
