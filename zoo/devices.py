"""Device choice: CUDA, then Apple's MPS, then CPU; everything runs in float32."""

from __future__ import annotations

import torch

from .errors import ZooError


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ZooError(f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"device {requested!r} asked for, but this torch sees no CUDA GPU; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ZooError(f"device {requested!r} asked for, but MPS is not available here; use --device cpu")
    return device
