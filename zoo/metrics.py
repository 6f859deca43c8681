"""Image metrics as plugins: a MetricSpec names a metric and builds it; plugins register them via `register_metrics`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .registry import NAME_PATTERN


@dataclass(frozen=True)
class MetricSpec:
    """`create(device)` returns a callable mapping two (B, 3, H, W) batches in [-1, 1] to B distances (0 = identical)."""

    name: str
    description: str
    create: Callable[[torch.device], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]
    plugin: str = ""

    def __post_init__(self):
        if not NAME_PATTERN.match(self.name or ""):
            raise ValueError(f"metric name {self.name!r} must be lowercase [a-z0-9-]")
        if not callable(self.create):
            raise ValueError(f"metric {self.name}: create must be callable")
