"""What several commands share: a model named on the command line, an input size, an image
file prepared for a trained model."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np


def usage_error(message: str):
    """A setting argparse could not check (main turns it into argparse's usage message)."""
    return argparse.ArgumentError(None, message)


def load_model(spec: str, num_classes: int | None):
    """A zoo name, or ``path/to/file.py:factory`` (a function or class returning a Module);
    returns (model, the zoo's input size or None)."""
    from .. import models
    from ..nn import Module

    if ":" not in spec:
        return models.get(spec, num_classes=num_classes), models.default_input_size(spec)
    path, _, attr = spec.rpartition(":")
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"no such file: {path} (MODEL is a zoo name or path/to/file.py:factory)")
    mod_spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    if not hasattr(module, attr):
        raise ValueError(f"{path} has no attribute {attr!r}")
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    model = getattr(module, attr)(**kwargs)
    if not isinstance(model, Module):
        raise ValueError(f"{spec} returned {type(model).__name__}, not a convnetpy Module")
    return model, None


def parse_input(text: str) -> tuple[int, ...]:
    """'3x224x224' -> (3, 224, 224)."""
    try:
        vals = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        vals = ()
    if len(vals) != 3 or min(vals) < 1:
        raise ValueError(f"--input must be CxHxW like 3x224x224, got {text!r}")
    return vals


def image_input(path, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """Decode a JPEG/PNG for a checkpoint: (pixels (C, H, W) uint8 at the model's size,
    the normalised float32 input (1, C, H, W)). Raises ValueError naming the file."""
    from ..data import decode_image

    c, h, w = meta["input_shape"]
    try:
        arr = decode_image(Path(path), (h, w), "L" if c == 1 else "RGB")
    except Exception as e:  # noqa: BLE001 - any decoder failure is the file's fault
        raise ValueError(f"{path}: cannot read it as a JPEG or PNG image ({e})") from e
    return arr, normalise(arr[None], meta)


def normalise(pixels: np.ndarray, meta: dict) -> np.ndarray:
    """uint8 images (N, C, H, W) as a checkpoint's model takes them: float32, scaled to
    [0, 1] and normalised with the run's channel mean and std."""
    mean = np.asarray(meta["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(meta["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return (pixels.astype(np.float32) / 255 - mean) / std


SPLITS = ("test", "train", "val")


def run_split(spec: str | None, split: str | None, cfg, meta: dict):
    """The images of a trained run to look at: ``split`` of ``spec`` (default: the run's
    data). "val" is exactly the run's validation carve-out (its seed and fraction), "train"
    the whole training split, "test" the official test files; the default is "test" when
    ``spec`` is given, else "val". Returns (dataset, a description naming the split)."""
    from ..data import get_dataset

    given = meta.get("given", {}).get("data")
    if given and not spec:
        raise ValueError(f"this run trained on a dataset object passed to fit ({given}), "
                         f"which its recipe cannot load again; name the data with --data")
    split = split or ("test" if spec else "val")
    if split not in SPLITS:
        raise usage_error(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    source = spec or cfg.data
    ds = get_dataset(source, cfg.image_size, "test" if split == "test" else "train",
                     input_shape=tuple(meta["input_shape"]))  # synthetic data: the model's
    if tuple(ds.image_shape) != tuple(meta["input_shape"]):
        raise ValueError(f"the data's images are {ds.image_shape}, the model was trained on "
                         f"{tuple(meta['input_shape'])}")
    if split == "val":
        ds = ds.split(cfg.val_fraction, cfg.seed)[1]
        how = ", as the run carved it" if source == cfg.data else ""
        what = (f"the validation split of {source} (val_fraction {cfg.val_fraction}, seed "
                f"{cfg.seed}{how})")
    else:
        what = f"the {split} split of {source}"
    return ds, what


def class_indices(names: list[str], classes: list[str], option: str = "--class") -> list[int]:
    """Classes named on the command line by name or index, in the order given, each once
    ('all': every class); an unknown one raises ValueError listing the classes."""
    out: list[int] = []
    for name in names:
        if name == "all":
            out += range(len(classes))
        elif name in classes:
            out.append(classes.index(name))
        elif name.isdigit() and int(name) < len(classes):
            out.append(int(name))
        else:
            raise ValueError(f"{option} {name!r} is not a class of this model; the classes are "
                             f"{', '.join(classes)} (or an index 0..{len(classes) - 1})")
    return list(dict.fromkeys(out))


def class_index(name: str, classes: list[str], option: str = "--target") -> int:
    """One class named on the command line by name or index (not 'all')."""
    if name == "all":
        raise ValueError(f"{option} takes one class, not 'all'")
    return class_indices([name], classes, option)[0]
