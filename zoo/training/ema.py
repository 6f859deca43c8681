"""The EMA copy of G (the model that is kept): its per-step decay and update."""

from __future__ import annotations

import torch

from .config import TrainConfig


def ema_decay(config: TrainConfig, images_seen: int) -> float:
    """Per-step EMA decay for a half-life of ema_kimg thousand images (ramped up early in training)."""
    half_life = config.ema_kimg * 1000
    if config.ema_rampup > 0:
        half_life = min(half_life, images_seen * config.ema_rampup)
    return 0.5 ** (config.batch / max(half_life, 1e-8))


@torch.no_grad()
def accumulate_ema(ema_params: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * param, for the given (trainable) parameters only; buffers are left alone."""
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
