"""An image folder, ``root/<class>/*.jpg|png`` (torchvision's ImageFolder layout), decoded
once into one uint8 array so that later epochs never decode again.

Pillow opens only JPEG and PNG, every image is fully decoded with ``load()`` and its pixel
count is capped before decoding; a corrupt, truncated, unreadable or oversized file is
skipped with one warning line naming it and the reason. Hidden files and folders are
ignored.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from .dataset import ArrayDataset

EXTENSIONS = {".jpg", ".jpeg", ".png"}
MAX_PIXELS = 4096 * 4096


def decode_image(source, size: tuple[int, int], mode: str = "RGB",
                 max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A JPEG or PNG (a path or a binary file object) as uint8 (C, H, W) of ``size`` (H, W),
    in ``mode`` "RGB" or "L" (grey). Pillow opens only those two formats, the pixel count is
    capped before decoding, and the whole image is decoded, so a corrupt or truncated file
    raises here (Pillow's error, or ValueError for an oversized one)."""
    from PIL import Image

    # what Pillow raises besides OSError on a damaged file: SyntaxError for a broken PNG
    # chunk, DecompressionBombError for a header claiming billions of pixels, and a few
    # decoder internals; each becomes one ValueError naming the file
    damaged = (SyntaxError, Image.DecompressionBombError, struct.error, EOFError, IndexError,
               zlib.error)
    try:
        with Image.open(source, formats=["JPEG", "PNG"]) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ValueError(f"{w}x{h} pixels exceeds the cap of {max_pixels:,}")
            im.load()
            im = im.convert(mode)
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except damaged as e:
        name = getattr(source, "name", source)
        raise ValueError(f"{name}: not a readable JPEG or PNG ({type(e).__name__}: {e})") \
            from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_folder(root: str | Path, image_size: int | tuple[int, int] = 32,
                channels: int = 3, max_pixels: int = MAX_PIXELS) -> ArrayDataset:
    """Decode ``root/<class>/<image>`` into an ArrayDataset resized to ``image_size``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of class subfolders")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"{root} has no class subfolders (expected root/<class>/*.jpg)")
    images, labels, skipped = [], [], 0
    for ci, cls in enumerate(classes):
        files = sorted(p for p in (root / cls).rglob("*")
                       if p.suffix.lower() in EXTENSIONS and p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
        for f in files:
            try:
                images.append(decode_image(f, size, "L" if channels == 1 else "RGB", max_pixels))
                labels.append(ci)
            except Exception as e:  # noqa: BLE001 - any unreadable image is skipped, named
                skipped += 1
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                warnings.warn(f"skipping {f}: {reason}", stacklevel=2)
    if not images:
        raise ValueError(f"{root}: no readable JPEG or PNG images"
                         + (f" ({skipped} skipped)" if skipped else ""))
    return ArrayDataset(np.stack(images), np.asarray(labels, dtype=np.int64), classes,
                        f"folder {root.name}")
