"""Test-time augmentation: a model's logits averaged over transformed copies of the input
(the evaluation half of flip-and-translate training, as airbench's ``tta_level``).

- ``"flip"``: the mean of the logits of x and of x mirrored left-right (2 passes).
- ``"flip-translate"``: half of that, plus half the mean of the same for x shifted one
  pixel up-left and one pixel down-right (with reflected borders): 6 passes.
"""

from __future__ import annotations

from .. import functional as F
from ..checks import check_choice
from ..tensor import Tensor
from .module import Module

MODES = {"none": 1, "flip": 2, "flip-translate": 6}


class TTA(Module):
    """``model`` evaluated with test-time augmentation ``mode`` (one of MODES; see the
    module docstring); ``passes`` is the number of forward passes per batch, which an
    honest timing counts.

    Shape:
        (N, C, H, W) -> the model's output (N, K)

    >>> from convnetpy import nn
    >>> import convnetpy as cp
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(),
    ...                     nn.Linear(4 * 8 * 8, 2))
    >>> tta = nn.TTA(net, "flip")
    >>> tta(cp.zeros(5, 3, 8, 8)).shape, tta.passes
    ((5, 2), 2)
    """

    def __init__(self, model: Module, mode: str = "flip") -> None:
        super().__init__()
        if not isinstance(model, Module):
            raise TypeError(f"TTA(model={model!r}): model must be an nn.Module, got "
                            f"{type(model).__name__}")
        check_choice(mode, "mode", tuple(MODES), "TTA",
                     f"test-time augmentation must be one of {', '.join(MODES)}")
        self.model, self.mode, self.passes = model, mode, MODES[mode]

    def _mirrored(self, x: Tensor) -> Tensor:
        return (self.model(x) + self.model(x[:, :, :, ::-1])) * 0.5

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "none":
            return self.model(x)
        if x.ndim != 4:
            raise ValueError(f"TTA needs images (N, C, H, W), got shape {tuple(x.shape)}")
        logits = self._mirrored(x)
        if self.mode == "flip":
            return logits
        h, w = x.shape[2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifted = (self._mirrored(padded[:, :, 0:h, 0:w])
                   + self._mirrored(padded[:, :, 2:h + 2, 2:w + 2])) * 0.5
        return logits * 0.5 + shifted * 0.5

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
