"""Reading tensors out of decoded state: numbered layers, required and float32 tensors, the mean latent."""

from __future__ import annotations

import re

import numpy as np
import torch

from ..model import ModelConfig
from .foreign import _Unreadable
from .metadata import _shown

# rosinality stores the upsampling blur kernels multiplied by factor**2 = 4; downsampling kernels unscaled.
UPSAMPLE_GAIN = 4


class _TensorTable(dict):
    """name -> float32 tensor; a name the file lacks is a problem with the file, not a KeyError."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def __missing__(self, name):
        raise _Unreadable(f"{self.what} has no tensor {name}; the file is incomplete or not a StyleGAN2 network")


def _numbered(names, pattern: str, start: int = 0) -> list[int]:
    """The numbers filling `pattern`'s group among `names`, which must run start, start+1, ... without a gap."""
    numbers = sorted(int(match.group(1)) for name in names if (match := re.fullmatch(pattern, name)))
    if numbers != list(range(start, start + len(numbers))):
        raise _Unreadable(f"layers matching {pattern!r} are numbered {_shown(numbers)}, with gaps; the file is incomplete")
    return numbers


def _block_resolutions(names, pattern: str) -> list[int]:
    """The resolutions 8, 16, ... of the upsampling blocks, which must all be present."""
    resolutions = sorted(int(match.group(1)) for name in names if (match := re.fullmatch(pattern, name)))
    if not resolutions or resolutions != [8 * 2**k for k in range(len(resolutions))]:
        raise _Unreadable(
            f"synthesis blocks at resolutions {resolutions} are not 8, 16, 32, ...; the file is incomplete"
        )
    return resolutions


def _required(state: dict, name: str) -> torch.Tensor:
    if name not in state:
        raise _Unreadable(f"tensor {name} is missing; the file is incomplete or not a StyleGAN2 generator")
    return state[name]


def _float_tensors(state, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict):
        raise _Unreadable(f"{what} is not a state dict of tensors")
    return _as_float32(state, what)


def _as_float32(named: dict, what: str) -> dict[str, torch.Tensor]:
    """name -> a float32 copy of each tensor or numeric array (a copy, so nothing keeps the file's storages alive).

    Each file object is copied at most once: a tensor stored under two names is refused, since a file could
    otherwise name one tensor a million times and have each name copied.
    """
    copies, first_name = {}, {}
    for name, value in named.items():  # `named` keeps every value alive, so their ids stay distinct
        if id(value) in first_name:
            raise _Unreadable(f"{what}.{name} and {first_name[id(value)]} are one tensor in the file; the file is damaged")
        first_name[id(value)] = name
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
            value = torch.from_numpy(value)
        if not isinstance(value, torch.Tensor):
            raise _Unreadable(f"{what}.{name} is not a numeric tensor")
        copies[name] = value.detach().to("cpu", torch.float32, copy=True).contiguous()
    return copies


def _latent_avg(value, config: ModelConfig) -> torch.Tensor | None:
    if value is None:
        return None
    if not isinstance(value, torch.Tensor) or value.numel() != config.style_dim:
        shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise _Unreadable(
            f"the stored mean latent has shape {shape}, but the mapping network is {config.style_dim} wide"
        )
    return value.detach().to("cpu", torch.float32, copy=True).reshape(-1)
