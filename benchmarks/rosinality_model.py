"""rosinality/stylegan2-pytorch's own Generator (its model.py and op/), for benchmarks against the original code.

Needs a checkout of that project (MIT; not vendored here), e.g.
`git clone https://github.com/rosinality/stylegan2-pytorch /tmp/stylegan2-pytorch`. Its op/ modules compile their
CUDA kernels when imported; on a CPU they are never called (upfirdn2d and fused_leaky_relu take their native paths
for CPU tensors), so the compilation is skipped here. zoo's parameter names are rosinality's, so zoo's weights load
as they are and both models compute the same images.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from unittest import mock

import torch

from zoo.model import Generator, ModelConfig


def import_model_module(checkout: Path):
    if not (checkout / "model.py").is_file() or not (checkout / "op").is_dir():
        sys.exit(f"{checkout}: not a checkout of rosinality/stylegan2-pytorch (needs model.py and op/); "
                 "clone https://github.com/rosinality/stylegan2-pytorch and pass its folder")  # fmt: skip
    sys.path.insert(0, str(checkout))
    with mock.patch("torch.utils.cpp_extension.load", return_value=None):  # the CUDA build; unused on a CPU
        return importlib.import_module("model")


def rosinality_generator(checkout: Path, zoo_generator: Generator, config: ModelConfig) -> torch.nn.Module:
    """rosinality's Generator with zoo_generator's weights (config must be rosinality's standard one for its size)."""
    if config != ModelConfig.standard(config.size):
        raise ValueError(f"rosinality's Generator only builds its standard configs, not {config}")
    model = import_model_module(checkout)
    generator = model.Generator(config.size, config.style_dim, config.n_mlp, channel_multiplier=2).eval()
    missing, unexpected = generator.load_state_dict(zoo_generator.state_dict(), strict=False)
    if missing:
        raise ValueError(f"zoo's state dict lacks rosinality's {missing[:3]}...")
    return generator


@torch.no_grad()
def render(generator: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """rosinality's call with its stored noise buffers, as zoo's noise='const'."""
    return generator([z], randomize_noise=False)[0]
