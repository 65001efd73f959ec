"""memosd-torch: an exact inner-product vector backend on PyTorch.

Entry point ``torch`` in ``memosd.backends``. Vectors live in one preallocated,
growable float32 tensor on the selected device (CUDA when a GPU is present, the
CPU otherwise; ``MEMOSD_TORCH_DEVICE`` = ``auto`` | ``cpu`` | ``cuda`` |
``cuda:N``); a search is one matrix-vector product and a top-k on that device.
Results follow the same contract as memosd's built-in ``numpy`` backend: exact
scores, best first, equal scores by key ascending.
"""

from __future__ import annotations

from .backend import TorchBackend
from .device import resolve_device

__all__ = ["TorchBackend", "resolve_device"]
__version__ = "0.1.0"
