"""Files in and out: checkpoints (a folder of safetensors weights and JSON metadata, written
atomically), the safetensors format itself, ``files.write_atomic`` for every other file,
PyTorch's ``torch.save`` files read without torch (torch_file.py: a restricted unpickler;
our own files never use pickle) and ONNX export and import (onnx_export.py, onnx_load.py;
the ``onnx`` extra).

>>> from convnetpy.io import load_checkpoint, restore, save_checkpoint
"""

from .checkpoint import Checkpoint, load_checkpoint, restore, save_checkpoint
from .checkpoint_meta import CheckpointError

__all__ = ["Checkpoint", "CheckpointError", "load_checkpoint", "restore", "save_checkpoint"]
