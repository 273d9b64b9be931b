"""Pictures of a network's insides as Pillow images: maps tiled in grids, filters as
patches, labelled figures. Each map is scaled to 0..255 by its own min and max (a constant
map is mid-grey), nearest-neighbour upscaled so that small maps stay readable.

>>> import numpy as np
>>> grid(np.zeros((6, 4, 4)), scale=2, columns=3).size   # 3 x 2 tiles of 8 px, 1-px gaps
(26, 17)
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

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


def save_png(img: Image.Image, path) -> None:
    """Write ``img`` as PNG through a temporary file, so that no partial file is left."""
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    img.save(tmp, format="PNG")
    tmp.replace(path)
