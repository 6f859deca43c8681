"""Layer swap, the paper's S(G', l): put the base's low-resolution layers back into a fine-tuned model.

Two forms (docs/transformation.md compares them with a picture):
- weight swap (the paper's description): a standalone model whose constant input and convolutions at the chosen
  resolutions (with their noise strengths, activation biases and stored noise maps) are the base's; everything else,
  including every ToRGB, stays the fine-tuned model's. `l` = 1, 2, 3 means every resolution up to 8, 16, 32 px.
- feature swap (the authors' code): at translation time, the base's activation at one resolution replaces the
  target's, which then runs the layers above it; the target's own low-resolution layers still feed its RGB skip path.
"""

from __future__ import annotations

import copy
from typing import Iterable

import torch

from .errors import ZooError
from .model import Generator, NoiseSpec
from .registry import RegistryEntry, install_model, load


def level_resolutions(level: int) -> list[int]:
    """The paper's l: l = 1 -> [4, 8], 2 -> [4, 8, 16], 3 -> [4, 8, 16, 32]; l = 0 swaps nothing."""
    if level < 0:
        raise ZooError(f"--swap {level}: the swap level must be 0 (none) or more")
    return [2**i for i in range(2, level + 3)] if level else []


def swapped_keys(generator: Generator, resolutions: Iterable[int]) -> list[str]:
    """State-dict keys of the synthesis layers at `resolutions` (ToRGB excluded), noise buffers included."""
    resolutions = set(resolutions)
    unknown = resolutions - set(generator.config.resolutions)
    if unknown:
        raise ZooError(f"cannot swap resolution(s) {sorted(unknown)}: the model has {generator.config.resolutions}")
    prefixes, noises = [], []
    if 4 in resolutions:
        prefixes += ["input.", "conv1."]
        noises.append("noises.noise_0")
    for index, res in enumerate(generator.config.resolutions[1:]):
        if res in resolutions:
            prefixes += [f"convs.{2 * index}.", f"convs.{2 * index + 1}."]
            noises += [f"noises.noise_{2 * index + 1}", f"noises.noise_{2 * index + 2}"]
    return [key for key in generator.state_dict() if key.startswith(tuple(prefixes)) or key in noises]


def check_compatible(base: Generator, target: Generator) -> None:
    if base.config != target.config:
        raise ZooError("layer swap needs two models of the same architecture; these configs differ "
                       f"({base.config.size}px/{base.config.style_dim} vs {target.config.size}px/{target.config.style_dim})")


def weight_swap(base: Generator, target: Generator, resolutions: Iterable[int]) -> Generator:
    """A new standalone generator: `target` with the base's layers at `resolutions`."""
    check_compatible(base, target)
    swapped = copy.deepcopy(target)
    base_state = base.state_dict()
    keys = swapped_keys(target, resolutions)
    with torch.no_grad():
        state = swapped.state_dict()
        for key in keys:
            state[key].copy_(base_state[key])
    return swapped


def feature_swap(
    base: Generator, target: Generator, latent: torch.Tensor, resolution: int, noise: NoiseSpec = "const"
) -> torch.Tensor:
    """Render W+ `latent` with `target`, its activation at `resolution` replaced by the base's."""
    check_compatible(base, target)
    if resolution not in target.config.resolutions:
        raise ZooError(f"cannot swap features at {resolution}px: the model has {target.config.resolutions}")
    _, features = base.synthesis(latent, noise=noise, return_features=True)
    return target.synthesis(latent, noise=noise, replace_features={resolution: features[resolution]})


def install_swapped(
    name: str, target: str, *, base: str | None = None, resolutions: Iterable[int], force: bool = False
) -> RegistryEntry:
    """`zoo swap`: install the weight-swapped model S(target, l) as NAME (base: the target's own base by default)."""
    target_model = load(target)
    base = base or target_model.info.lineage.get("base")
    if base is None:
        raise ZooError(f"{target!r} records no base model in its lineage; say which with --base")
    base_model = load(base)
    resolutions = sorted(set(resolutions))
    swapped = weight_swap(base_model.generator, target_model.generator, resolutions)
    swapped.latent_avg = target_model.generator.truncation_center().view(-1)
    lineage = {
        "transform": "layer-swap",
        "base": base,
        "base_sha256": base_model.sha256,
        "target": target,
        "target_sha256": target_model.sha256,
        "swap": {"resolutions": resolutions, "level": _level_of(resolutions)},
    }
    return install_model(name, swapped, family=target_model.info.family, lineage=lineage, force=force)


def _level_of(resolutions: list[int]) -> int | None:
    """The paper's l when `resolutions` is one of its levels (4 up to 2^(l+2)), else None."""
    level = len(resolutions) - 1
    return level if level >= 1 and resolutions == level_resolutions(level) else None
