"""Pictures of a network's insides as Pillow images: maps tiled in grids, filters as
patches, labelled figures, heat maps over images. Each map in a grid is scaled to 0..255 by
its own min and max (a constant map is mid-grey), nearest-neighbour upscaled so that small
maps stay readable.

>>> import numpy as np
>>> grid(np.zeros((6, 4, 4)), scale=2, columns=3).size   # 3 x 2 tiles of 8 px, 1-px gaps
(26, 17)
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageDraw

from ..io.files import write_atomic

GAP = 1
BACKGROUND = (24, 26, 31)


def _normalise_each(maps: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """uint8 of every map scaled by its own min and max over ``axes`` (constant: 128)."""
    a = np.nan_to_num(np.asarray(maps, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo = a.min(axis=axes, keepdims=True)
    span = a.max(axis=axes, keepdims=True) - lo
    flat = span < 1e-12
    out = np.clip((a - lo) / np.where(flat, 1.0, span) * 255 + 0.5, 0, 255)
    return np.where(flat, 128, out).astype(np.uint8)


def grid(maps: np.ndarray, scale: int = 1, columns: int | None = None,
         rgb: bool = False) -> Image.Image:
    """Tile maps (N, H, W) (or (N, 3, H, W) with ``rgb``) into one image, row-major; built
    as one array (no per-tile drawing), so thousands of tiles cost milliseconds."""
    maps = np.asarray(maps)
    n = maps.shape[0]
    h, w = maps.shape[-2:]
    cols = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    if rgb:
        tiles = _normalise_each(maps, (1, 2, 3)).transpose(0, 2, 3, 1)  # (N, H, W, 3)
    else:
        tiles = np.repeat(_normalise_each(maps, (1, 2))[..., None], 3, axis=3)
    tiles = np.repeat(np.repeat(tiles, scale, axis=1), scale, axis=2)
    th, tw = h * scale, w * scale
    canvas = np.empty((rows, th + GAP, cols, tw + GAP, 3), dtype=np.uint8)
    canvas[...] = BACKGROUND
    full = np.empty((rows * cols, th, tw, 3), dtype=np.uint8)
    full[...] = BACKGROUND
    full[:n] = tiles
    canvas[:, :th, :, :tw] = full.reshape(rows, cols, th, tw, 3).transpose(0, 2, 1, 3, 4)
    canvas = canvas.reshape(rows * (th + GAP), cols * (tw + GAP), 3)
    return Image.fromarray(np.ascontiguousarray(canvas[: rows * (th + GAP) - GAP,
                                                       : cols * (tw + GAP) - GAP]))


def filters(weight: np.ndarray, scale: int = 6) -> Image.Image:
    """Conv weights (O, C, KH, KW): one patch per filter, in colour when C is 3 and grey
    when C is 1; otherwise one grey patch per (filter, input channel), a filter per row
    (at most 32 channels)."""
    weight = np.asarray(weight)
    o, c = weight.shape[:2]
    if c == 3:
        return grid(weight, scale, rgb=True)
    if c == 1:
        return grid(weight[:, 0], scale)
    c = min(c, 32)
    return grid(weight[:, :c].reshape(o * c, *weight.shape[2:]), scale, columns=c)


def scale_for(h: int, w: int, target: int = 48) -> int:
    """An integer zoom that makes an (h, w) map about ``target`` pixels on its long side."""
    return max(1, min(8, target // max(h, w, 1)))


def pixels_image(pixels: np.ndarray, scale: int = 1) -> Image.Image:
    """uint8 pixels (C, H, W), C 1 or 3, as an RGB image upscaled ``scale`` times
    (nearest), the values as they are (``grid`` stretches each map to its own range).

    >>> pixels_image(np.zeros((1, 2, 3), np.uint8), scale=4).size
    (12, 8)
    """
    px = np.asarray(pixels)
    if px.ndim != 3 or px.shape[0] not in (1, 3) or px.dtype != np.uint8:
        raise ValueError(f"pixels_image: expected uint8 pixels (C, H, W) with C 1 or 3, got "
                         f"{px.dtype} {px.shape}")
    rgb = np.repeat(px, 3, axis=0) if px.shape[0] == 1 else px
    img = Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0)))
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def montage(parts: list[tuple[str, Image.Image]], columns: int = 5) -> Image.Image:
    """Captioned images (caption, image) side by side, ``columns`` to a row."""
    width = max(max(img.width, 7 * len(caption)) for caption, img in parts) + 20
    panels = [labelled([part], width=width) for part in parts]
    cols = min(columns, len(panels))
    rows = -(-len(panels) // cols)
    height = max(p.height for p in panels)
    out = Image.new("RGB", (cols * width, rows * height), BACKGROUND)
    for i, panel in enumerate(panels):
        out.paste(panel, ((i % cols) * width, (i // cols) * height))
    return out


def labelled(parts: list[tuple[str, Image.Image]], width: int | None = None) -> Image.Image:
    """Stack images vertically, each under a one-line caption."""
    width = width or max(max(img.width for _, img in parts), 300) + 20
    height = sum(img.height + 24 for _, img in parts) + 10
    out = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(out)
    y = 6
    for caption, img in parts:
        d.text((10, y), caption, fill=(230, 230, 230))
        out.paste(img, (10, y + 16))
        y += img.height + 24
    return out


def _heat_scale(heat: np.ndarray) -> tuple[np.ndarray, bool]:
    """(heat divided by its largest |value|, whether it has negative values)."""
    a = np.nan_to_num(np.asarray(heat, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.abs(a).max(initial=0.0))
    return (a / peak if peak > 1e-12 else np.zeros_like(a)), bool((a < 0).any())


def _colours(t: np.ndarray, signed: bool, cmap: str | None) -> np.ndarray:
    """RGB floats 0..1 (H, W, 3) of scaled heat ``t``: ``cmap`` (default "jet", or the
    diverging "bwr", white at 0, for a signed map) over 0..1, or -1..1 when signed."""
    from matplotlib import colormaps

    name = cmap or ("bwr" if signed else "jet")
    if name not in colormaps:
        raise ValueError(f"unknown colormap {name!r}; e.g. jet, inferno, viridis, bwr")
    return colormaps[name]((t + 1) / 2 if signed else t)[..., :3]


def heatmap(heat: np.ndarray, cmap: str | None = None) -> Image.Image:
    """A map (H, W) coloured as ``overlay`` colours it (scaled by its largest |value|)."""
    t, signed = _heat_scale(heat)
    return Image.fromarray((_colours(t, signed, cmap) * 255 + 0.5).astype(np.uint8))


def overlay(pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.8,
            cmap: str | None = None) -> Image.Image:
    """A heat map (H, W) blended over an image, uint8 (C, H, W) with C 1 or 3, or (H, W).

    The map is divided by its largest |value| to t in 0..1 (-1..1 when it has negative
    values) and coloured with matplotlib's ``cmap`` (``heatmap``); each pixel mixes in its
    colour with weight ``alpha * |t|``, so where the heat is 0 the image shows unchanged and
    the hottest pixel is (1 - alpha) * image + alpha * the colormap's end colour.

    >>> img = overlay(np.zeros((1, 2, 2), np.uint8), np.array([[0.0, 0.0], [0.0, 2.0]]))
    >>> img.getpixel((0, 0)), img.getpixel((1, 1))   # jet's top colour is (128, 0, 0)
    ((0, 0, 0), (102, 0, 0))
    """
    px = np.asarray(pixels)
    if px.ndim == 3 and px.shape[0] in (1, 3):
        px = px.transpose(1, 2, 0)
    elif px.ndim == 2:
        px = px[..., None]
    else:
        raise ValueError(f"overlay: pixels must be (C, H, W) with C 1 or 3, or (H, W), got "
                         f"shape {px.shape}")
    heat = np.asarray(heat)
    if heat.shape != px.shape[:2]:
        raise ValueError(f"overlay: heat map {heat.shape} and image {px.shape[:2]} differ in "
                         f"size")
    t, signed = _heat_scale(heat)
    weight = alpha * np.abs(t)[..., None]
    out = (1 - weight) * px.astype(np.float64) + weight * 255 * _colours(t, signed, cmap)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def png_bytes(img: Image.Image, compress_level: int = 6) -> bytes:
    """``img`` encoded as PNG (compress_level 1 is ~3x faster, for small live pictures)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def data_url(png: bytes) -> str:
    """PNG bytes as a ``data:`` URL, for a page that must carry its own pictures."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def save_png(img: Image.Image, path) -> None:
    """Write ``img`` as a PNG at ``path`` atomically (``io.files.write_atomic``)."""
    write_atomic(path, png_bytes(img))
