"""Which torch device the backend runs on."""

from __future__ import annotations

import os

import torch

DEVICE_ENV = "MEMOSD_TORCH_DEVICE"
"""Environment variable choosing the device: ``auto`` (default), ``cpu``, ``cuda`` or ``cuda:N``."""


def resolve_device(spec: str | None = None) -> torch.device:
    """The device for ``spec`` (default: ``$MEMOSD_TORCH_DEVICE``, else ``auto``).

    ``auto`` picks the first CUDA GPU when torch sees one and the CPU otherwise.
    Asking for CUDA where there is none raises ``RuntimeError`` rather than
    silently running on the CPU: memosd then reports the plugin as failed and
    falls back to its built-in backend, which makes the misconfiguration visible.
    """
    spec = (spec if spec is not None else os.environ.get(DEVICE_ENV, "")).strip().lower() or "auto"
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"{DEVICE_ENV}={spec}: torch sees no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(f"{DEVICE_ENV}={spec}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise RuntimeError(f"{DEVICE_ENV}={spec}: only cpu and cuda are supported")
    return device
