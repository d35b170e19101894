"""The one place where the compute device is chosen."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def choose_device(preference: str = "auto") -> torch.device:
    """Map a user preference ('auto', 'cpu', 'cuda' or 'cuda:N') to a torch.device.

    'auto' takes CUDA when present. Asking for CUDA on a machine without it is an
    error rather than a silent fallback, so a user never believes a CPU run is a GPU one.
    """
    preference = (preference or "auto").lower()
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cpu":
        return torch.device("cpu")
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {preference!r} was asked for, but CUDA is not available on this machine")
        return torch.device(preference)
    raise ValueError(f"unknown device {preference!r}; choose one of {', '.join(DEVICE_CHOICES)}")


def cuda_available() -> bool:
    return torch.cuda.is_available()
