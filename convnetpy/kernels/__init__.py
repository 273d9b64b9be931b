"""Pure-NumPy forward/backward kernels: ndarray in, ndarray out; imports only numpy.

Every ``*_forward`` returns ``(out, cache)`` and the matching ``*_backward`` takes
``(dout, cache)`` and returns the gradients.
"""

from ..shape import ShapeError  # noqa: F401
