"""Translation between domains of one family: generate the source image's latent with another domain's model.

The content code w_c is the W+ latent found by inverting the input with the source model (never passed through a
mapping network again). The target renders it on every layer, or, for multi-modal and reference-guided output (the
paper's Eq. 10), on all but its last K layers, which take an appearance code w_a: a random w (truncated toward the
target's mean) or the inverted latent of a reference image.

Layer swap at translation time takes the low-resolution layers from the SOURCE model (the model the image was
inverted with; the base itself when the source is the base, as in the paper). `weights` builds the weight-swapped
model once; `features` runs the source and hands its activation at 2^(l+2) px to the target (the authors' code).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checkpoint import ZooModel
from .errors import ZooError
from .model import Generator
from .swap import feature_swap, level_resolutions, weight_swap

SWAP_MODES = ("weights", "features")


@dataclass
class TranslationOptions:
    swap: int = 0  # the paper's l: 0 = none, 1, 2, 3 = layers up to 8, 16, 32 px from the source model
    swap_mode: str = "weights"
    appearance_layers: int = 2  # K: how many of the last W+ rows take the appearance code
    truncation: float = 0.7  # of random appearance codes, toward the target's mean latent
    seed: int = 0

    def __post_init__(self):
        if self.swap_mode not in SWAP_MODES:
            raise ZooError(f"--swap-mode {self.swap_mode!r}: use weights or features")
        if self.swap < 0 or self.appearance_layers < 0 or not 0 < self.truncation <= 1:
            raise ZooError("--swap and --appearance-layers must be >= 0 and --truncation in (0, 1]")


def check_same_family(source: ZooModel, target: ZooModel) -> None:
    """Translation needs a shared W space: the two models' mapping networks must be identical."""
    if source.info.mapping_sha256 != target.info.mapping_sha256:
        raise ZooError(
            f"cannot translate {source.info.domain} (family {source.info.family}) -> {target.info.domain} "
            f"(family {target.info.family}): their mapping networks differ, so they share no W space; "
            "translate between domains of one family (`zoo list`)"
        )


class Renderer:
    """The target model, layer-swapped with the source as asked: `render(latents, noise)` -> images."""

    def __init__(self, source: Generator, target: Generator, options: TranslationOptions):
        self.source, self.target, self.options = source, target, options
        self.resolutions = level_resolutions(options.swap)
        if self.resolutions and max(self.resolutions) >= target.config.size:
            raise ZooError(f"--swap {options.swap} would swap every layer of a {target.config.size}px model; use a lower level")
        if self.resolutions and options.swap_mode == "weights":
            self.target = weight_swap(source, target, self.resolutions)

    @torch.no_grad()
    def render(self, latents: torch.Tensor, noise) -> torch.Tensor:
        if self.resolutions and self.options.swap_mode == "features":
            return feature_swap(self.source, self.target, latents, max(self.resolutions), noise=noise)
        return self.target.synthesis(latents, noise=noise)


def with_appearance(content: torch.Tensor, appearance: torch.Tensor, layers: int) -> torch.Tensor:
    """W+ with the content rows first and the appearance rows on the last `layers` rows.

    content: (B, n_latent, D); appearance: (B, D) or (B, n_latent, D), one per content row.
    """
    if layers == 0:
        return content
    n_latent = content.shape[1]
    if layers >= n_latent:
        raise ZooError(f"--appearance-layers {layers}: the model has {n_latent} latent rows; use fewer")
    if appearance.ndim == 2:
        appearance = appearance[:, None, :].expand(-1, n_latent, -1)
    return torch.cat([content[:, : n_latent - layers], appearance[:, n_latent - layers :]], dim=1)


@torch.no_grad()
def random_appearance(target: Generator, count: int, options: TranslationOptions) -> torch.Tensor:
    """`count` appearance codes w_a = f(z_a), z_a ~ N(0, I) from the seed, truncated toward the target's mean."""
    z = torch.randn(count, target.config.style_dim, generator=torch.Generator().manual_seed(options.seed))
    return target.truncate(target.mapping(z.to(target.input.input.device)), options.truncation)


def repeat_noise(noise, times: int):
    """Per-image noise maps repeated for `times` outputs per image (shared maps and 'const'/'random' pass through)."""
    if isinstance(noise, str):
        return noise
    return [layer if layer.shape[0] == 1 else layer.repeat_interleave(times, 0) for layer in noise]


def translate(renderer: Renderer, latents: torch.Tensor, noise) -> torch.Tensor:
    """One output per input: the content code on every layer."""
    return renderer.render(latents, noise)


def translate_multimodal(renderer: Renderer, latents: torch.Tensor, noise, styles: int) -> torch.Tensor:
    """(B, styles, 3, H, W): each input with the same `styles` random appearance codes (Eq. 10)."""
    options = renderer.options
    appearance = random_appearance(renderer.target, styles, options)
    batch = latents.shape[0]
    content = latents.repeat_interleave(styles, 0)
    mixed = with_appearance(content, appearance.repeat(batch, 1), options.appearance_layers)
    images = renderer.render(mixed, repeat_noise(noise, styles))
    return images.view(batch, styles, *images.shape[1:])


def translate_with_reference(renderer: Renderer, latents: torch.Tensor, noise, reference_latents: torch.Tensor) -> torch.Tensor:
    """One output per input, its appearance rows from the reference's latent (inverted with the target model)."""
    appearance = reference_latents.expand(latents.shape[0], -1, -1)
    return renderer.render(with_appearance(latents, appearance, renderer.options.appearance_layers), noise)
