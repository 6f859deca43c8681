"""A trained model into the registry: its lineage (recipe, base, data, command) and `train_and_install`, which refuses
before training what installing would refuse after it (`registry.check_installable`)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from ..checkpoint import ZooModel
from ..logging_sinks import TrainingSink
from ..model import ModelConfig
from ..registry import Registry, RegistryEntry, check_installable, install_model
from .config import TrainConfig
from .loop import ProgressCallback, TrainResult, default_run_dir, train


def install_result(
    name: str,
    result: TrainResult,
    *,
    family: str | None = None,
    force: bool = False,
    command: str | None = None,
    registry: Registry | None = None,
    keep_discriminator: bool = True,
    data_license: str | None = None,
) -> RegistryEntry:
    """Install G_ema (and D, for later fine-tuning, unless keep_discriminator is off) as checkpoints/NAME.safetensors
    with its lineage.

    The family defaults to the base's under FreezeFC (same mapping network), else to the model's own name.
    """
    base = result.base
    if family is None:
        family = base.family if base and result.config.freeze_fc else name
    lineage = {
        "transform": "fine-tune" if base else "train-base",
        "base": base.name if base else None,
        "base_sha256": base.sha256 if base else None,
        "recipe": result.config.to_dict(),
        "iterations": result.steps,
        "data": result.data,
        "augment": result.augment,
        "precision": result.precision,
        "wall_time_seconds": round(result.wall_time_seconds, 1),
        "command": command,
        "data_license": data_license,  # what the training images' licence asks of the model and its images
    }
    lineage = {key: value for key, value in lineage.items() if value is not None}
    return install_model(
        name, result.generator, family=family, lineage=lineage, force=force, registry=registry,
        discriminator=result.discriminator if keep_discriminator else None,
    )  # fmt: skip


def train_and_install(
    name: str,
    config: TrainConfig,
    data_root: str | Path,
    *,
    base: ZooModel | None = None,
    model_config: ModelConfig | None = None,
    family: str | None = None,
    force: bool = False,
    resume: bool = False,
    run_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    include: Callable[[Path], bool] | None = None,
    progress: ProgressCallback | None = None,
    command: str | None = None,
    registry: Registry | None = None,
    keep_discriminator: bool = True,
    data_license: str | None = None,
    sinks: Sequence[TrainingSink] = (),
) -> tuple[TrainResult, RegistryEntry | None]:
    """`zoo train-base` / `zoo add-domain` in one call: refuse early, train, install (rank 0); (result, entry)."""
    keeps_mapping_of = base.info.family if base is not None and config.freeze_fc else None
    resolution = model_config.size if model_config is not None else base.info.config.size if base is not None else None
    check_installable(name, force=force, family=family, keeps_mapping_of=keeps_mapping_of, resolution=resolution,
                      registry=registry)  # fmt: skip
    result = train(
        config, data_root, run_dir or default_run_dir(name), model_config=model_config, base=base, resume=resume, include=include,
        device=device, progress=progress, sinks=sinks, provenance={"model": name, "data_license": data_license},
    )  # fmt: skip
    if not result.is_main_process:
        return result, None
    entry = install_result(name, result, family=family, force=force, command=command, registry=registry,
                           keep_discriminator=keep_discriminator, data_license=data_license)  # fmt: skip
    return result, entry
