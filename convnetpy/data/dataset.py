"""ArrayDataset: images as one uint8 (N, C, H, W) array plus int64 labels, validated once.

Every loader in convnetpy.data returns one, so training never decodes or validates twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def validate_labels(labels, n_images: int, num_classes: int | None = None,
                    source: str = "labels") -> np.ndarray:
    """Labels as int64, checked: one per image, integers, in [0, num_classes).

    >>> validate_labels([0, 2, 1], 3, 3).tolist()
    [0, 2, 1]
    """
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{source}: expected a 1-D sequence of class indices, got shape "
                         f"{arr.shape}")
    if len(arr) != n_images:
        raise ValueError(f"{source}: {len(arr)} labels for {n_images} images; there must be "
                         "exactly one label per image")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            if arr.dtype.kind == "f":
                i = int(np.flatnonzero(np.mod(arr, 1) != 0)[0])
                bad = f"{float(arr[i])} at index {i}"
            else:
                bad = repr(arr.flat[0].item() if hasattr(arr.flat[0], "item") else arr.flat[0])
            raise ValueError(f"{source}: labels must be integer class indices, got {bad} "
                             f"(dtype {arr.dtype})")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{source}: label {int(arr.min())} at index "
                         f"{int(np.argmin(arr))} is negative")
    if num_classes is not None and arr.size and arr.max() >= num_classes:
        i = int(np.argmax(arr))
        raise ValueError(f"{source}: label {int(arr[i])} at index {i} is out of range for "
                         f"{num_classes} classes (valid: 0..{num_classes - 1})")
    return arr


@dataclass
class ArrayDataset:
    """``images`` uint8 (N, C, H, W), ``labels`` int64 (N,), ``classes`` names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str] = field(default_factory=list)
    name: str = "dataset"

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"{self.name}: images must be (N, C, H, W), got "
                             f"{self.images.shape}")
        if self.images.dtype != np.uint8:
            raise ValueError(f"{self.name}: images must be uint8, got {self.images.dtype}")
        if not self.classes:
            n = int(self.labels.max()) + 1 if len(self.labels) else 0
            self.classes = [str(i) for i in range(n)]
        self.labels = validate_labels(self.labels, len(self.images), len(self.classes),
                                      f"{self.name} labels")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: np.ndarray, name: str | None = None) -> ArrayDataset:
        return ArrayDataset(self.images[index], self.labels[index], list(self.classes),
                            name or self.name)

    def split(self, val_fraction: float, seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
        """A seeded, stratified train/validation split (the validation part is carved from
        the training data: the held-out test sets are not used)."""
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        rng = np.random.default_rng(seed)
        val = []
        for c in range(self.num_classes):
            idx = np.flatnonzero(self.labels == c)
            rng.shuffle(idx)
            val.append(idx[: int(round(len(idx) * val_fraction))])
        val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
        mask = np.ones(len(self), dtype=bool)
        mask[val_idx] = False
        return (self.subset(np.flatnonzero(mask), self.name + " (train split)"),
                self.subset(val_idx, self.name + " (validation split)"))
