"""Random samples from a generator, reproducible from a seed."""

from __future__ import annotations

from typing import Callable

import torch

from .errors import ZooError, check_in_range
from .images import MAX_BATCH, check_image_memory
from .model import Generator, NoiseSpec

SEED_RANGE = dict(min=-(2**63), max=2**64 - 1)  # what torch.Generator.manual_seed takes
NOISE_MODES = ("const", "random")  # stored noise maps (reproducible) or fresh ones


def check_truncation(truncation: float) -> None:
    if not 0 <= truncation < float("inf"):  # written so that NaN fails
        raise ZooError(f"--truncation {truncation}: must be 0 (the mean latent) or more, 1 for none")


def sample_latents(generator: Generator, n: int, seed: int) -> torch.Tensor:
    """n z vectors from N(0, I), the same for a given seed on every device."""
    return torch.randn(n, generator.config.style_dim, generator=torch.Generator().manual_seed(seed))


def sample(
    generator: Generator,
    n: int = 16,
    *,
    seed: int = 0,
    truncation: float = 1.0,
    noise: NoiseSpec = "const",
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """n images (n, 3, H, W) in [-1, 1] on the CPU; `on_batch(k)` is called after each batch of k images."""
    check_in_range("--n", n, 1)
    check_image_memory(f"--n {n}", n, generator.config.size)
    return render(generator, sample_latents(generator, n, seed), truncation=truncation, noise=noise, batch_size=batch_size,
                  on_batch=on_batch)  # fmt: skip


def sample_seeds(generator: Generator, seeds: list[int], **options) -> torch.Tensor:
    """One image per seed (len(seeds), 3, H, W), as NVIDIA's `--seeds`: seed s gives the first image of `sample(...,
    seed=s)`, whatever the other seeds; `options` are `sample`'s."""
    check_in_range("--seeds count", len(seeds), 1)
    check_image_memory(f"--seeds ({len(seeds)} seeds)", len(seeds), generator.config.size)
    return render(generator, torch.cat([sample_latents(generator, 1, seed) for seed in seeds]), **options)


@torch.no_grad()
def render(
    generator: Generator,
    latents: torch.Tensor,
    *,
    truncation: float = 1.0,
    noise: NoiseSpec = "const",
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """The images of z `latents`, `batch_size` at a time, on the CPU."""
    check_in_range("--batch", batch_size, 1, MAX_BATCH)
    check_truncation(truncation)
    device = generator.input.input.device
    images = []
    for z in latents.split(batch_size):
        image, _ = generator(z.to(device), truncation=truncation, noise=noise)
        images.append(image.cpu())
        if on_batch:
            on_batch(len(z))
    return torch.cat(images)
