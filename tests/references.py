"""Independent references for the paper's method, written out here rather than through the code under test:
StyleGAN2's synthesis layer by layer (for the layer swaps), the swapped keys found by running the model, SeFa in numpy
from the published recipe, and the SeFa box from the model's own seeded samples."""

from __future__ import annotations

import copy

import numpy as np
import torch

from zoo.model import Generator, StyledConv


def activations(generator: Generator, latent: torch.Tensor, replace: dict | None = None) -> dict[int, torch.Tensor]:
    """{resolution: activation after its convolutions}, each model with its own stored noise maps; `replace` swaps an
    activation in (it then feeds that resolution's ToRGB and every layer above)."""
    replace = replace or {}
    noise = [getattr(generator.noises, f"noise_{i}") for i in range(generator.num_layers)]
    x = generator.conv1(generator.input(latent.shape[0]), latent[:, 0], noise=noise[0])
    features = {4: replace.get(4, x)}
    x = features[4]
    for k, res in enumerate(generator.config.resolutions[1:]):
        x = generator.convs[2 * k](x, latent[:, 2 * k + 1], noise=noise[2 * k + 1])
        x = generator.convs[2 * k + 1](x, latent[:, 2 * k + 2], noise=noise[2 * k + 2])
        x = features[res] = replace.get(res, x)
    return features


def to_image(generator: Generator, features: dict[int, torch.Tensor], latent: torch.Tensor) -> torch.Tensor:
    """The ToRGB skip path over per-resolution activations."""
    image = generator.to_rgb1(features[4], latent[:, 1])
    for k, res in enumerate(generator.config.resolutions[1:]):
        image = generator.to_rgbs[k](features[res], latent[:, 2 * k + 3], image)
    return image


@torch.no_grad()
def render(generator: Generator, latent: torch.Tensor) -> torch.Tensor:
    return to_image(generator, activations(generator, latent), latent)


@torch.no_grad()
def feature_swapped(base: Generator, target: Generator, latent: torch.Tensor, resolution: int) -> torch.Tensor:
    """The authors' feature swap: the target's image with the base's activation at `resolution` put in its place."""
    base_activation = activations(base, latent)[resolution]
    return to_image(target, activations(target, latent, {resolution: base_activation}), latent)


@torch.no_grad()
def keys_by_resolution(generator: Generator, resolutions) -> set[str]:
    """The state-dict keys of the synthesis convolutions whose output is at `resolutions` px, found by running the model
    (a hook records each StyledConv's output size), plus the constant input and the noise maps of those sizes."""
    sizes = {}
    hooks = [
        module.register_forward_hook(lambda _module, _args, out, name=name: sizes.__setitem__(name, out.shape[-1]))
        for name, module in generator.named_modules()
        if isinstance(module, StyledConv)
    ]
    try:
        render(generator, torch.zeros(1, generator.n_latent, generator.config.style_dim))
    finally:
        for hook in hooks:
            hook.remove()
    swapped_modules = tuple(f"{name}." for name, size in sizes.items() if size in resolutions)
    state = generator.state_dict()
    keys = {key for key in state if key.startswith(swapped_modules)}
    keys |= {key for key, value in state.items() if key.startswith("noises.") and value.shape[-1] in resolutions}
    return keys | ({"input.input"} if 4 in resolutions else set())


def weight_swapped(base: Generator, target: Generator, keys) -> Generator:
    """A copy of `target` holding the base's tensors at `keys`."""
    swapped = copy.deepcopy(target)
    base_state = base.state_dict()
    swapped.load_state_dict({key: base_state[key] if key in keys else value for key, value in target.state_dict().items()})
    return swapped


def sefa_numpy(generator: Generator) -> tuple[np.ndarray, np.ndarray]:
    """SeFa (Shen & Zhou, CVPR 2021) as its official code computes it, in numpy: the style-modulation weights of the
    chosen layers, transposed and concatenated into (D, channels), each column scaled to unit length, then the
    eigenvectors of W Wᵀ by decreasing eigenvalue. Layers: every modulated synthesis convolution (conv1, convs.*),
    no ToRGB, as zoo documents. Returns (eigenvalues, directions as rows)."""
    state = generator.state_dict()
    names = [key for key in state if key.endswith("conv.modulation.weight") and not key.startswith("to_rgb")]
    weight = np.concatenate([state[name].double().numpy().T for name in names], axis=1)
    weight = weight / np.linalg.norm(weight, axis=0, keepdims=True)
    eigenvalues, eigenvectors = np.linalg.eig(weight @ weight.T)
    order = np.argsort(-eigenvalues.real)
    return eigenvalues.real[order], eigenvectors.real[:, order].T


@torch.no_grad()
def sefa_bounds(generator: Generator, directions: torch.Tensor, samples: int, seed: int = 0):
    """Smallest and largest (w - w̄)·n_k over `samples` seeded w = f(z), z ~ N(0, I)."""
    z = torch.randn(samples, generator.config.style_dim, generator=torch.Generator().manual_seed(seed))
    w = generator.style(z).double()
    coordinates = (w - generator.latent_avg.double().view(1, -1)) @ directions.double().T
    return coordinates.min(0).values, coordinates.max(0).values
