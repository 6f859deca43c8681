"""Domains: listing, describing and the state of what plugins declare (the spec types live in zoo.specs).

A domain is listed whether or not its weights exist; `zoo pull` fetches declared weights, and `zoo add-domain`
trains the rest from the recipe's base.
"""

from __future__ import annotations

import difflib
import fnmatch

from .checkpoint import read_info
from .errors import ZooError
from .files import sha256_file
from .plugins import plugin_listing, registered_domains
from .registry import ENCODERS, TRANSLATORS, CompanionEntry, Registry, resolve
from .specs import IMAGE_SUFFIXES, WEIGHT_FORMATS, DataSource, DomainSpec, Recipe, Weights  # noqa: F401 - the plugin API, re-exported


def list_domains(pattern: str | None = None, family: str | None = None) -> list[DomainSpec]:
    """Every domain the loaded plugins provide, filtered by a wildcard pattern and family, sorted by family then name."""
    domains = registered_domains().values()
    return sorted(
        (spec for spec in domains if (pattern is None or fnmatch.fnmatch(spec.name, pattern)) and family in (None, spec.family)),
        key=lambda spec: (spec.family, spec.recipe.base is not None, spec.name),
    )


def get_domain(name: str) -> DomainSpec:
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
        # an installed model's own resolution: a plugin may declare another while its models are being rebuilt
        resolution = installed[spec.name].resolution if spec.name in installed else spec.resolution
        rows.append({"domain": spec.name, "family": spec.family, "resolution": resolution, "base": spec.recipe.base,
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
        for name, entry in sorted(registry.companions(table).items()):
            if (pattern is None or fnmatch.fnmatch(name, pattern)) and family in (None, entry.family):
                resolution = installed[entry.base].resolution if entry.base in installed else None  # it works at its base's
                rows.append({"domain": name, "family": entry.family, "resolution": resolution, "base": entry.base,
                             "state": state, "plugin": None, "version": None})
    return [row for row in rows if not installed_only or row["state"] in ("installed", *COMPANION_STATES.values())]


def describe(name_or_path: str) -> dict:
    """`zoo info`: what the checkpoint says (if installed or a path) and what the domain's plugin declares."""
    spec = registered_domains().get(name_or_path)
    registry = Registry()
    for table in COMPANION_STATES:
        entry = registry.companions(table).get(name_or_path)
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


def companion_facts(registry: Registry, table: str, name: str, entry: CompanionEntry) -> dict:
    """`zoo info` of an installed encoder or translator: its file (sha256 checked against registry.toml), base,
    family, what it is made of (backbone, targets) and lineage."""
    path = registry.contained_file(name, entry.file, table)
    sha256 = sha256_file(path)
    return {
        entry.kind or table[:-1]: name,
        "family": entry.family,
        "base": entry.base,
        "base sha256": entry.base_sha256,
        **{key: getattr(entry, key) for key in ("backbone", "targets") if getattr(entry, key) is not None},
        "file": str(path),
        "sha256": sha256,
        "verified against registry.toml": sha256 == entry.sha256,
        "size on disk (bytes)": path.stat().st_size,
        "created": entry.created,
        "lineage": entry.lineage,
    }
