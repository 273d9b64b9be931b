"""Files in and out: checkpoints (a folder of safetensors weights and JSON metadata, written
atomically) and the safetensors format itself. No pickle anywhere.

>>> from convnetpy.io import load_checkpoint, restore, save_checkpoint
"""

from .checkpoint import Checkpoint, load_checkpoint, restore, save_checkpoint

__all__ = ["Checkpoint", "load_checkpoint", "restore", "save_checkpoint"]
