"""Rendering a latent with a target model of the family: the options (each as given, else the target's recipe, else
the default), the `Renderer` with its layer swap (weights or features, from the source model), and appearance codes
for multi-modal and reference-guided outputs (the paper's Eq. 10). `zoo.translation` runs whole jobs on top of it;
`zoo.translator` distils it into a feed-forward network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checkpoint import ZooModel
from .errors import ZooError, check_in_range
from .images import MAX_BATCH
from .model import Generator
from .plugins import registered_domains
from .registry import Registry
from .specs import Recipe
from .swap import feature_swap, level_resolutions, weight_swap

SWAP_MODES = ("weights", "features")


MAX_STYLES = 256  # random appearance codes per input: a figure's worth; more is a typo, not a translation


@dataclass
class TranslationOptions:
    swap: int = 0  # the paper's l: 0 = none, 1, 2, 3 = layers up to 8, 16, 32 px from the source model
    swap_mode: str = "weights"
    appearance_layers: int = 2  # K: how many of the last W+ rows take the appearance code
    truncation: float = 0.7  # of random appearance codes, toward the target's mean latent
    seed: int = 0
    batch: int = 16  # images rendered together: the memory of a render is bounded by it, not by inputs x styles

    def __post_init__(self):
        if self.swap_mode not in SWAP_MODES:
            raise ZooError(f"--swap-mode {self.swap_mode!r}: use weights or features")
        check_in_range("--swap", self.swap, 0)
        check_in_range("--appearance-layers", self.appearance_layers, 0)
        if not 0 < self.truncation <= 1:  # written so that NaN fails
            raise ZooError(f"--truncation {self.truncation}: must be in (0, 1]")
        check_in_range("--batch", self.batch, 1, MAX_BATCH)


def check_styles(styles: int, minimum: int = 0) -> None:
    check_in_range("--styles", styles, minimum, MAX_STYLES)


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
        top_level = target.config.size.bit_length() - 4  # the highest l leaving the target's last resolution its own
        if options.swap > top_level:
            raise ZooError(f"--swap {options.swap} would swap every layer of a {target.config.size}px model; "
                           f"use a level from 0 to {top_level}")  # fmt: skip
        if options.appearance_layers >= target.n_latent:
            raise ZooError(f"--appearance-layers {options.appearance_layers}: {target.config.size}px models have "
                           f"{target.n_latent} latent rows and the content needs at least one; use 0 to {target.n_latent - 1}")  # fmt: skip
        self.resolutions = level_resolutions(options.swap)
        if self.resolutions and options.swap_mode == "weights":
            self.target = weight_swap(source, target, self.resolutions)

    @torch.no_grad()
    def render(self, latents: torch.Tensor, noise) -> torch.Tensor:
        """Images of W+ `latents` (B, n_latent, D), `options.batch` at a time, on the CPU: many inputs times many
        styles never make one batch the memory cannot hold."""
        chunks = []
        for start in range(0, latents.shape[0], self.options.batch):
            rows = slice(start, start + self.options.batch)
            chunks.append(self.render_batch(latents[rows], noise_rows(noise, rows)).cpu())
        return torch.cat(chunks)

    def render_batch(self, latents: torch.Tensor, noise) -> torch.Tensor:
        if self.resolutions and self.options.swap_mode == "features":
            return feature_swap(self.source, self.target, latents, max(self.resolutions), noise=noise)
        return self.target.synthesis(latents, noise=noise)


def noise_rows(noise, rows: slice):
    """The noise of some rows of a batch: per-image maps sliced, shared maps and 'const'/'random' as they are."""
    if isinstance(noise, str):
        return noise
    return [layer if layer.shape[0] == 1 else layer[rows] for layer in noise]


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


def translate(renderer: Renderer, latents: torch.Tensor, noise) -> torch.Tensor:
    """One output per input: the content code on every layer."""
    return renderer.render(latents, noise)


def translate_multimodal(renderer: Renderer, latents: torch.Tensor, noise, styles: int) -> torch.Tensor:
    """(B, styles, 3, H, W): each input with the same `styles` random appearance codes (Eq. 10), one code at a time,
    so neither the latents nor per-image noise maps are copied `styles` times."""
    check_styles(styles, minimum=1)
    appearance = random_appearance(renderer.target, styles, renderer.options)
    rows = renderer.options.appearance_layers
    return torch.stack([renderer.render(with_appearance(latents, code.expand(latents.shape[0], -1), rows), noise)
                        for code in appearance], dim=1)  # fmt: skip


def translate_with_reference(renderer: Renderer, latents: torch.Tensor, noise, reference_latents: torch.Tensor) -> torch.Tensor:
    """One output per input, its appearance rows from the reference's latent (inverted with the target model)."""
    appearance = reference_latents.expand(latents.shape[0], -1, -1)
    return renderer.render(with_appearance(latents, appearance, renderer.options.appearance_layers), noise)


def family_members(source: str, registry: Registry | None = None) -> list[str]:
    """Installed models that share `source`'s mapping network (its W space), `source` excluded, sorted."""
    domains = (registry or Registry()).domains()
    if source not in domains:
        raise ZooError(f"model {source!r} is not installed; see `zoo list --installed`")
    mapping = domains[source].mapping_sha256
    return sorted(name for name, entry in domains.items() if name != source and entry.mapping_sha256 == mapping)


def recipe_defaults(target: str) -> Recipe | None:
    """The target's declared recipe (swap level, appearance layers, truncation), when it is a plugin's domain."""
    spec = registered_domains().get(target)
    return spec.recipe if spec else None


def translation_options(
    target: str,
    *,
    swap: int | None = None,
    swap_mode: str = "weights",
    appearance_layers: int | None = None,
    truncation: float | None = None,
    seed: int = 0,
    batch: int = 16,
) -> TranslationOptions:
    """Options for translating into `target`: each one as given, else the target's declared recipe, else the default."""
    recipe = recipe_defaults(target)
    return TranslationOptions(
        swap=swap if swap is not None else (recipe.swap_layers if recipe else 0),
        swap_mode=swap_mode,
        appearance_layers=appearance_layers if appearance_layers is not None else (recipe.appearance_layers if recipe else 2),
        truncation=truncation if truncation is not None else (recipe.truncation if recipe else 0.7),
        seed=seed,
        batch=batch,
    )


def render_rows(renderer: Renderer, latents: torch.Tensor, noise, styles: int, reference: torch.Tensor | None) -> torch.Tensor:
    """(B, columns, 3, H, W): the translation, then each style, then the reference-guided output."""
    columns = [translate(renderer, latents, noise)[:, None]]
    if styles:
        columns.append(translate_multimodal(renderer, latents, noise, styles))
    if reference is not None:
        columns.append(translate_with_reference(renderer, latents, noise, reference)[:, None])
    return torch.cat(columns, dim=1).cpu()
