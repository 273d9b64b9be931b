"""Weights from PyTorch, without torch: ``load_torch_state_dict(path)`` reads what
``torch.save(model.state_dict(), path)`` writes (the zip format) through a restricted
unpickler that builds only tensors, storages and plain containers and refuses anything else
before it runs (``UnsafeFileError``); ``load_torch_weights(model, path)`` loads them into a
convnetpy model. The zoo's AlexNet, VGG and ResNet keys are torchvision's, so its weights
load as they are. Nothing here imports torch.

>>> from convnetpy.interop import load_torch_state_dict, load_torch_weights
"""

from .io.torch_file import MAX_BYTES, UnsafeFileError, load_torch_state_dict, load_torch_weights

__all__ = ["load_torch_state_dict", "load_torch_weights", "UnsafeFileError", "MAX_BYTES"]
