"""Translations without a model, the bars a StyleGAN translation has to beat (issue 17).

- do nothing: the input itself (`evaluation.paired_scores` measures it beside every translation);
- colour transfer: each channel histogram-matched from the source style's training images to the target style's (classic
  histogram specification, pooled over each style's images): one 256-entry lookup table per channel.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from .data import images_to_float, list_image_files
from .errors import ZooError
from .images import load_images, to_uint8
from .plugins import registered_domains

LEVELS = 256


def channel_histograms(images: torch.Tensor) -> torch.Tensor:
    """(3, 256) counts of each byte value per channel, over every pixel of (B, 3, H, W) images in [-1, 1]."""
    pixels = to_uint8(images).long().transpose(0, 1).reshape(3, -1)
    return torch.stack([torch.bincount(channel, minlength=LEVELS) for channel in pixels]).double()


def training_images(domain: str) -> list[Path]:
    """The images the domain's model trains on: its bundled data through its training filter."""
    spec = registered_domains().get(domain)
    if spec is None or spec.data.bundled is None:
        raise ZooError(f"{domain}: colour transfer needs a declared domain with bundled data (e.g. emoji-twemoji)")
    include = spec.data.include or (lambda path: True)
    return [path for path in list_image_files(spec.data.bundled) if include(path)]


@lru_cache(maxsize=16)
def style_histograms(domain: str, size: int) -> torch.Tensor:
    """(3, 256) pooled channel histograms of `domain`'s training images at `size` px (read once per process: an
    evaluation at several swap levels asks for the same tables again)."""
    files = training_images(domain)
    counts = torch.zeros(3, LEVELS, dtype=torch.float64)
    for start in range(0, len(files), 256):
        counts += channel_histograms(load_images(files[start : start + 256], size))
    return counts


def matching_tables(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(3, 256) lookup tables sending each source byte to the target byte at the same cumulative frequency."""
    source_cdf = source.cumsum(1) / source.sum(1, keepdim=True)
    target_cdf = target.cumsum(1) / target.sum(1, keepdim=True)
    tables = torch.stack([torch.searchsorted(target_cdf[c].contiguous(), source_cdf[c].contiguous()) for c in range(3)])
    return tables.clamp_(0, LEVELS - 1)


def colour_transfer_tables(source: str, target: str, size: int) -> torch.Tensor:
    """(3, 256) lookup tables from `source`'s training images' channel histograms to `target`'s."""
    return matching_tables(style_histograms(source, size), style_histograms(target, size))


def colour_transfer(images: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) images in [-1, 1] through one 256-entry lookup table per channel; [-1, 1] out."""
    pixels = to_uint8(images).long()
    mapped = torch.stack([tables[channel][pixels[:, channel]] for channel in range(3)], dim=1)
    return images_to_float(mapped.to(torch.uint8)).to(images.device)
