"""Domain specs: what a plugin declares about a domain (data, fine-tune recipe, published weights).

A domain is listed whether or not its weights exist; `zoo pull` fetches declared weights, and `zoo add-domain`
trains the rest from the recipe's base.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .checkpoint import read_info
from .errors import ZooError
from .files import sha256_file
from .registry import ENCODERS, NAME_PATTERN, TRANSLATORS, Registry, resolve

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
WEIGHT_FORMATS = ("zoo-safetensors", "rosinality-train", "rosinality-convert", "nvidia-ada-pkl", "nvidia-tf-pkl")


@dataclass(frozen=True)
class DataSource:
    """Where a domain's training images come from and what a user's folder must look like."""

    description: str
    license: str
    layout: str = "a folder of images (png/jpg/jpeg/webp), searched recursively"
    preprocessing: str = "converted to RGB, centre-cropped and resized to the domain's resolution"
    url: str | None = None
    bundled: Path | None = None
    include: Callable[[Path], bool] | None = None  # which files of `bundled` to train on (e.g. a training split)
    min_images: int = 100
    checker: Callable[[Path], list[str]] | None = None

    def check(self, folder: str | Path) -> list[str]:
        """Problems with a user's data folder (empty list = looks usable)."""
        folder = Path(folder)
        if not folder.is_dir():
            return [f"{folder} is not a folder"]
        count = sum(1 for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
        problems = [] if count >= self.min_images else [f"{folder} holds {count} images; this domain expects at least {self.min_images}"]
        return problems + (self.checker(folder) if self.checker else [])


@dataclass(frozen=True)
class Recipe:
    """How the domain's model is made: from scratch when `base` is None, else fine-tuned from `base`."""

    base: str | None
    iters: int
    batch: int = 16
    lr: float = 0.002
    freeze_fc: bool = True
    freeze_d: int = 0
    augment: str = "auto"
    r1_gamma: float = 10.0
    swap_layers: int = 0
    appearance_layers: int = 4
    truncation: float = 0.7
    method: str = "bounded"  # how `zoo translate` into this domain works by default (--method auto)
    architecture: dict | None = None  # ModelConfig fields (style_dim, n_mlp, channels) of a base trained from scratch

    def __post_init__(self):
        if self.iters <= 0 or self.batch <= 0 or self.lr <= 0:
            raise ValueError("iters, batch and lr must be positive")
        if self.augment not in ("auto", "ada", "diffaug", "off"):
            raise ValueError(f"augment must be auto, ada, diffaug or off, not {self.augment!r}")
        if min(self.freeze_d, self.swap_layers, self.appearance_layers) < 0 or not 0 < self.truncation <= 1:
            raise ValueError("freeze_d, swap_layers, appearance_layers must be >= 0 and truncation in (0, 1]")


@dataclass(frozen=True)
class Weights:
    """Published weights: tried URL by URL, verified against sha256 when the publisher gave one."""

    urls: tuple[str, ...]
    format: str
    license: str
    sha256: str | None = None
    notes: str = ""

    def __post_init__(self):
        if not self.urls:
            raise ValueError("weights need at least one URL")
        if self.format not in WEIGHT_FORMATS:
            raise ValueError(f"weights format must be one of {', '.join(WEIGHT_FORMATS)}, not {self.format!r}")


@dataclass(frozen=True)
class DomainSpec:
    name: str
    family: str
    description: str
    resolution: int
    data: DataSource
    recipe: Recipe
    weights: Weights | None = None
    plugin: str = field(default="", compare=False)

    def __post_init__(self):
        for label, value in (("name", self.name), ("family", self.family)):
            if not isinstance(value, str) or not NAME_PATTERN.match(value):
                raise ValueError(f"domain {label} {value!r} must be lowercase [a-z0-9-] (never a path)")
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(f"domain {self.name}: resolution must be a power of two >= 8, got {self.resolution}")
        if self.recipe.base == self.name:
            raise ValueError(f"domain {self.name}: a recipe cannot fine-tune a domain from itself")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["data"].pop("checker")
        data["data"].pop("include")
        data["data"]["bundled"] = str(self.data.bundled) if self.data.bundled else None
        return data


def list_domains(pattern: str | None = None, family: str | None = None) -> list[DomainSpec]:
    """Every domain the loaded plugins provide, filtered by a wildcard pattern and family, sorted by family then name."""
    from .plugins import registered_domains

    domains = registered_domains().values()
    return sorted(
        (spec for spec in domains if (pattern is None or fnmatch.fnmatch(spec.name, pattern)) and family in (None, spec.family)),
        key=lambda spec: (spec.family, spec.recipe.base is not None, spec.name),
    )


def get_domain(name: str) -> DomainSpec:
    from .plugins import registered_domains

    domains = registered_domains()
    if name not in domains:
        close = difflib.get_close_matches(name, domains, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ZooError(f"unknown domain {name!r}: {hint}see `zoo list` (domains come from plugins: `zoo plugins`)")
    return domains[name]


UNREGISTERED = "unregistered file"  # a checkpoint with no registry entry: `zoo import --force` it, or delete it
INSTALLED_ENCODER = "installed encoder"  # an image -> latent encoder of a family's base (zoo train-encoder)
# The registry's tables of networks made for one base (zoo/companions.py) and the state `zoo list` shows for each.
COMPANION_STATES = {ENCODERS: INSTALLED_ENCODER, TRANSLATORS: "installed translator"}


def domain_status(pattern: str | None = None, family: str | None = None, installed_only: bool = False) -> list[dict]:
    """`zoo list`: every declared domain and every installed model, with its state and plugin.

    state is "installed", "unregistered file" (checkpoints/NAME.safetensors without a registry entry), or the command
    that installs it: "zoo pull" (published weights), "zoo add-domain" (fine-tune from `base`) or "zoo train-base"
    (train from scratch).
    """
    from .plugins import plugin_listing

    registry = Registry()
    installed = registry.domains()
    unregistered = [path.stem for path in registry.unregistered_files(installed) if path.stem not in installed]  # e.g. left by a crash
    versions = {row["name"]: row["version"] for row in plugin_listing()}
    rows = []
    for spec in list_domains(pattern, family):
        if spec.name in installed:
            state = "installed"
        elif spec.name in unregistered:
            state = UNREGISTERED
        elif spec.weights:
            state = "zoo pull"
        else:
            state = "zoo add-domain" if spec.recipe.base else "zoo train-base"
        rows.append({"domain": spec.name, "family": spec.family, "resolution": spec.resolution, "base": spec.recipe.base,
                     "state": state, "plugin": spec.plugin, "version": versions.get(spec.plugin)})
    declared = {spec.name for spec in list_domains()}
    for name, entry in sorted(installed.items()):
        if name not in declared and (pattern is None or fnmatch.fnmatch(name, pattern)) and family in (None, entry.family):
            rows.append({"domain": name, "family": entry.family, "resolution": entry.resolution,
                         "base": entry.lineage.get("base"), "state": "installed", "plugin": None, "version": None})
    for name in unregistered:
        if name not in declared and (pattern is None or fnmatch.fnmatch(name, pattern)) and family is None:
            rows.append({"domain": name, "family": None, "resolution": None, "base": None, "state": UNREGISTERED, "plugin": None, "version": None})
    for table, state in COMPANION_STATES.items():
        for name, entry in sorted(registry.table(table).items()):
            if (pattern is None or fnmatch.fnmatch(name, pattern)) and family in (None, entry.get("family")):
                rows.append({"domain": name, "family": entry.get("family"), "resolution": None, "base": entry.get("base"),
                             "state": state, "plugin": None, "version": None})
    return [row for row in rows if not installed_only or row["state"] in ("installed", *COMPANION_STATES.values())]


def describe(name_or_path: str) -> dict:
    """`zoo info`: what the checkpoint says (if installed or a path) and what the domain's plugin declares."""
    from .plugins import registered_domains

    spec = registered_domains().get(name_or_path)
    registry = Registry()
    for table in COMPANION_STATES:
        entry = registry.table(table).get(name_or_path)
        if entry is not None:
            return companion_facts(registry, table, name_or_path, entry)
    facts: dict = {}
    if spec is None or registry.get(name_or_path):
        path, registered_sha256 = resolve(name_or_path)
        info = read_info(path)
        sha256 = sha256_file(path)
        facts.update({
            "domain": info.domain,
            "family": info.family,
            "file": str(path),
            "sha256": sha256,
            "verified against registry.toml": None if registered_sha256 is None else sha256 == registered_sha256,
            "size on disk (bytes)": path.stat().st_size,
            "generator parameters": info.generator_parameters,
            "discriminator": info.has_discriminator,
            "config": info.config.to_dict(),
            "mapping sha256": info.mapping_sha256,
            "lineage": info.lineage,
            "zoo version": info.zoo_version,
            "created": info.created,
        })
    if spec is not None:
        facts.update({"declared by plugin": spec.plugin, "domain spec": spec.to_dict()})
    return facts


def companion_facts(registry: Registry, table: str, name: str, entry: dict) -> dict:
    """`zoo info` of an installed encoder or translator: its file (sha256 checked against registry.toml), base,
    family, what it is made of (backbone, targets) and lineage."""
    path = registry.contained_file(name, entry.get("file"), table)
    sha256 = sha256_file(path)
    return {
        entry.get("kind", table[:-1]): name,
        "family": entry.get("family"),
        "base": entry.get("base"),
        "base sha256": entry.get("base_sha256"),
        **{key: entry[key] for key in ("backbone", "targets") if key in entry},
        "file": str(path),
        "sha256": sha256,
        "verified against registry.toml": sha256 == entry.get("sha256"),
        "size on disk (bytes)": path.stat().st_size,
        "created": entry.get("created"),
        "lineage": entry.get("lineage"),
    }
