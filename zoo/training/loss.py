"""StyleGAN2's losses and regularisers: the non-saturating logistic loss, R1, and path-length regularisation."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's logistic loss: softplus(D(fake)) + softplus(-D(real)), batch means."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's non-saturating loss: softplus(-D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1: the squared norm of D's gradient at the real images, batch mean (differentiable: create_graph)."""
    (gradient,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return gradient.square().flatten(1).sum(1).mean()


def path_lengths(images: torch.Tensor, latents: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """|J_w^T y| per image, y a random image: how far the image moves per unit step in W (per-layer mean)."""
    (gradient,) = torch.autograd.grad((images * projection).sum(), latents, create_graph=True)
    return gradient.square().sum(2).mean(1).sqrt()


def path_length_penalty(lengths: torch.Tensor, mean_length: torch.Tensor) -> torch.Tensor:
    """Path-length regularisation: the lengths' squared deviation from their running mean."""
    return (lengths - mean_length).square().mean()
