"""`import_checkpoint`: a foreign or zoo file read, checked for NaN/Inf and installed in the registry."""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import load_model
from ..files import sha256_file
from ..model import Discriminator, Generator
from ..registry import install_model
from .architecture import _check_expectations
from .detect import detect_format
from .foreign import _about, _Unreadable
from .metadata import plain_metadata
from .reading import read_checkpoint


def import_checkpoint(
    path,
    name: str,
    *,
    family: str | None = None,
    force: bool = False,
    n_mlp: int | None = None,
    channel_multiplier: int | None = None,
    registry=None,
    source: str | None = None,
) -> dict:
    """Read any supported file and install it as checkpoints/NAME.safetensors (family defaults to NAME).

    Returns the registry entry; its lineage records the source (`source`, e.g. a URL, else the file name), format,
    sha256, and the source's details.
    """
    path = Path(path)
    if detect_format(path) == "zoo-safetensors":
        model = load_model(path, with_discriminator="auto")
        with _about(path):
            _check_expectations(model.info.config, n_mlp, channel_multiplier)
        generator, discriminator = model.generator, model.discriminator
        lineage = {"source_format": "zoo-safetensors", "source_lineage": model.info.lineage}
    else:
        checkpoint = read_checkpoint(path, n_mlp=n_mlp, channel_multiplier=channel_multiplier)
        generator, discriminator = checkpoint.build()
        lineage = {"source_format": checkpoint.source_format, "details": checkpoint.details}
    with _about(path):
        _refuse_non_finite(generator, discriminator)
    lineage.update(transform="import", source=source or path.name, source_sha256=sha256_file(path))
    return install_model(
        name,
        generator,
        family=family or name,
        lineage=plain_metadata(lineage),
        discriminator=discriminator,
        force=force,
        registry=registry,
    )


def _refuse_non_finite(generator: Generator, discriminator: Discriminator | None) -> None:
    """NaN or infinite weights (a diverged run, a damaged file) would install fine and sample garbage: refuse them."""
    tensors = {f"g_ema.{name}": tensor for name, tensor in generator.state_dict().items()}
    tensors["latent_avg"] = generator.truncation_center()
    if discriminator is not None:
        tensors.update({f"d.{name}": tensor for name, tensor in discriminator.state_dict().items()})
    for name, tensor in tensors.items():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise _Unreadable(
                f"tensor {name} holds {bad} NaN or infinite values (of {tensor.numel()}); the weights are broken "
                "(a diverged training run?), so zoo does not install them"
            )
