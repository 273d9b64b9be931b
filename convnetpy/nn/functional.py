"""``convnetpy.nn.functional`` is ``convnetpy.functional`` (PyTorch's import path also works:
``import convnetpy.nn.functional as F``)."""

import sys

from .. import functional as _functional

sys.modules[__name__] = _functional
