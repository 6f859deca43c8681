"""From a domain's recipe and the user's options to one training run: `zoo train-base` and `zoo add-domain`.

Options given on the command line win; otherwise the domain plugin's recipe (when NAME is a known domain) gives the
value; otherwise TrainConfig's default applies (`training.resolve_config`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .checkpoint import ZooModel
from .domains import DomainSpec
from .errors import ZooError
from .model import ModelConfig, standard_channels
from .plugins import registered_domains
from .registry import Registry, check_name
from .training import TrainConfig, load_base, resolve_config


@dataclass
class TrainPlan:
    name: str
    config: TrainConfig
    data: Path
    model_config: ModelConfig | None = None
    base: ZooModel | None = None
    include: Callable[[Path], bool] | None = None  # the bundled data's training split, when training on it
    family: str | None = None  # None: a fine-tune joins its base's family (FreezeFC), anything else its own
    data_license: str | None = None  # the licence of the declared domain's bundled data, when training on it


def parse_channels(text: str) -> dict[int, int]:
    """'4:256,8:256,16:128,32:64' -> {4: 256, 8: 256, 16: 128, 32: 64}."""
    try:
        return {int(res): int(width) for res, width in (item.split(":") for item in text.split(","))}
    except ValueError:
        raise ZooError(f"--channels {text!r}: give resolution:width pairs, e.g. 4:256,8:256,16:128,32:64") from None


def plan_train_base(
    name: str,
    *,
    data: str | Path | None = None,
    size: int | None = None,
    channels: dict[int, int] | None = None,
    style_dim: int | None = None,
    n_mlp: int | None = None,
    **options,
) -> TrainPlan:
    """A new base model from scratch; a declared domain supplies size, architecture, data and iterations."""
    spec = _declared(name)
    if spec is not None and spec.recipe.base is not None:
        raise ZooError(f"domain {name!r} is fine-tuned from {spec.recipe.base}: use `zoo add-domain {name}`")
    architecture = dict(spec.recipe.architecture or {}) if spec else {}
    size = size or (spec.resolution if spec else None)
    if size is None:
        raise ZooError(f"--size is needed: {name!r} is not a declared domain (see `zoo list`)")
    overrides = {"style_dim": style_dim, "n_mlp": n_mlp, "channels": channels}
    architecture.update({key: value for key, value in overrides.items() if value is not None})
    architecture.setdefault("channels", standard_channels(size))
    try:
        model_config = ModelConfig(size=size, **architecture)
    except ValueError as error:
        raise ZooError(f"model architecture: {error}") from None
    config = resolve_config({**options, "freeze_fc": False}, spec.recipe if spec else None)  # nothing to keep yet
    return TrainPlan(name, config, _data_folder(name, spec, data), model_config=model_config, include=_split(spec, data),
                     family=spec.family if spec else None, data_license=_bundled_license(spec, data))  # fmt: skip


def plan_add_domain(
    name: str, *, data: str | Path | None = None, base: str | None = None, install_as: str | None = None, **options
) -> TrainPlan:
    """The paper's fine-tuning F(G_base, D_t): FreezeFC on unless asked otherwise; the base from the recipe.

    install_as names the result differently from the domain whose data and recipe it uses (e.g. an ablation variant).
    """
    spec = _declared(name)
    base = base or (spec.recipe.base if spec else None)
    if base is None:
        raise ZooError(f"--base is needed: {name!r} declares no base domain (see `zoo list`)")
    options.setdefault("freeze_fc", None)
    if options["freeze_fc"] is None and (spec is None or spec.recipe.base is None):
        options["freeze_fc"] = True
    config = resolve_config(options, spec.recipe if spec else None)
    data_folder = _data_folder(name, spec, data)
    base_model = load_base(_installed_base(base))
    if spec is not None and spec.resolution != base_model.info.config.size:
        warnings.warn(f"{name} is declared at {spec.resolution}px but base {base} is {base_model.info.config.size}px; "
                      "training at the base's resolution", stacklevel=2)
    return TrainPlan(check_name(install_as or name), config, data_folder, base=base_model, include=_split(spec, data),
                     data_license=_bundled_license(spec, data))  # fmt: skip


def _installed_base(base: str) -> str:
    if Registry().get(base) is not None or Path(base).is_file():
        return base
    declared = registered_domains().get(base)
    how = "`zoo pull {0}`" if declared and declared.weights else "`zoo train-base {0}`" if declared and not declared.recipe.base else "`zoo import`"
    raise ZooError(f"base model {base!r} is not installed; install it first with {how.format(base)}")


def _declared(name: str) -> DomainSpec | None:
    check_name(name)
    return registered_domains().get(name)


def _split(spec: DomainSpec | None, data: str | Path | None) -> Callable[[Path], bool] | None:
    return spec.data.include if spec is not None and data is None else None


def _bundled_license(spec: DomainSpec | None, data: str | Path | None) -> str | None:
    return spec.data.license if spec is not None and data is None else None


def _data_folder(name: str, spec: DomainSpec | None, data: str | Path | None) -> Path:
    if data is None:
        if spec is None or spec.data.bundled is None:
            where = f" ({spec.data.description}; {spec.data.url or 'no URL'})" if spec else ""
            raise ZooError(f"--data DIR is needed: {name!r} ships no images{where}")
        return spec.data.bundled
    folder = Path(data)
    if not folder.is_dir():
        raise ZooError(f"{folder}: not a folder; --data takes a folder of images (png/jpg/jpeg/webp)")
    for problem in spec.data.check(folder) if spec else []:
        warnings.warn(f"{name} data: {problem}", stacklevel=3)
    return folder
