"""Networks made for one base model and kept beside it: encoders (zoo/encoder.py) and translators (zoo/translator.py).

Each is a safetensors file in checkpoints/ (metadata: format, config, base name and sha256, family, lineage) and an
entry in its own table of registry.toml (`[encoders.NAME]`, `[translators.NAME]`) with the file's sha256 and its
base's, written in the registry's transaction as models are. Their training runs share one loop: zoo/companion_training.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from .checkpoint import ZooModel, read_safetensors
from .errors import ZooError
from .files import atomic_path, sha256_file
from .registry import CHECKPOINTS, UNKNOWN_SHA256, CompanionEntry, Registry, check_name, load, resolve

FORMAT_VERSION = "1"


@dataclass
class Companion:
    """A network to install: its registry table, kind ('encoder', 'translator'), file format and config."""

    table: str
    kind: str
    format: str
    module: nn.Module
    config: dict


def save_companion(path: Path, companion: Companion, *, base: str, base_sha256: str, family: str, lineage: dict) -> str:
    """Write the weights and metadata atomically; returns the file's sha256."""
    metadata = {
        "zoo.format": companion.format,
        "zoo.format_version": FORMAT_VERSION,
        "config": json.dumps(companion.config),
        "base": base,
        "base_sha256": base_sha256,
        "family": family,
        "lineage": json.dumps(lineage),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({key: value.detach().cpu().contiguous() for key, value in companion.module.state_dict().items()}, str(tmp),
                  metadata=metadata)  # fmt: skip
    return sha256_file(path)


def install_companion(companion: Companion, name: str, base: str, *, lineage: dict, extra: dict | None = None,
                      force: bool = False, registry: Registry | None = None) -> dict:  # fmt: skip
    """Save checkpoints/NAME.safetensors and record it in its table with its base's sha256, as one transaction."""
    registry = registry or Registry()
    check_name(name)
    base_path, base_sha256 = resolve(base, registry)
    base_sha256 = base_sha256 or sha256_file(base_path)
    family = registry.get(base).family if registry.get(base) else load(base).info.family
    destination = registry.model_file(name)
    with registry.editing() as edit:
        entries = edit.tables.setdefault(companion.table, {})
        if not force and (name in entries or name in edit.domains or destination.exists()):
            raise ZooError(f"{destination}: '{name}' already exists; pass --force to replace it, or choose another name")
        entry = {
            "file": f"{CHECKPOINTS}/{destination.name}",
            "sha256": UNKNOWN_SHA256,
            "kind": companion.kind,
            "base": base,
            "base_sha256": base_sha256,
            "family": family,
            **(extra or {}),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "lineage": lineage,
        }
        registry.serialise(edit.domains, {**edit.tables, companion.table: {**entries, name: entry}})  # before any write
        entry["sha256"] = save_companion(edit.stage(destination), companion, base=base, base_sha256=base_sha256, family=family,
                                         lineage=lineage)  # fmt: skip
        entries[name] = entry
    return entry


def installable_name(table: str, kind: str, base: str, name: str | None, *, force: bool, registry: Registry) -> str:
    """NAME (default BASE-KIND) for a new entry of `table`, refused before any training when it is taken."""
    name = check_name(name or f"{base}-{kind}")
    if not force and (name in installed(table, registry) or name in registry.domains()):
        raise ZooError(f"'{name}' is already installed; pass --force to replace it, or choose another --name")
    return name


def installed(table: str, registry: Registry | None = None) -> dict[str, CompanionEntry]:
    return (registry or Registry()).companions(table)


def matching(table: str, base_sha256: str, registry: Registry | None = None) -> list[str]:
    """The installed entries of `table` made for exactly the base with this sha256, sorted."""
    return sorted(name for name, entry in installed(table, registry).items() if entry.base_sha256 == base_sha256)


def companion_file(table: str, name_or_path: str | Path, hint: str, registry: Registry | None = None) -> Path:
    """An installed entry's file (inside checkpoints/, sha256 checked against registry.toml) or a path as given."""
    registry = registry or Registry()
    entry = installed(table, registry).get(str(name_or_path))
    path = registry.contained_file(str(name_or_path), entry.file, table) if entry else Path(name_or_path)
    if not path.is_file():
        raise ZooError(f"{name_or_path}: neither an installed {table[:-1]} nor a file; {hint}")
    if entry and sha256_file(path) != entry.sha256:
        raise ZooError(f"{path}: sha256 differs from registry.toml's; the file changed, train or install it again")
    return path


def read_companion(path: Path, format: str, base: ZooModel | None, kind: str, command: str) -> tuple[dict, dict]:
    """(config, tensors) of a companion file of `format`; with `base`, it must have been made for that checkpoint."""
    metadata, tensors = read_safetensors(path, f"{kind} file", f"train one with `zoo {command} BASE`")
    if metadata.get("zoo.format") != format:
        raise ZooError(f"{path}: not a zoo {kind}; make one with `zoo {command} BASE`")
    if base is not None and metadata.get("base_sha256") != sha256_file(base.info.path):
        raise ZooError(f"{path}: trained for {metadata.get('base')}, not for {base.info.domain}; train one with "
                       f"`zoo {command} {base.info.domain}`")  # fmt: skip
    return json.loads(metadata["config"]), tensors


def load_companion(table: str, name_or_path: str | Path, format: str, build, *, base: ZooModel | None, kind: str, command: str,
                   registry: Registry | None = None) -> nn.Module:  # fmt: skip
    """An installed entry by name (sha256 checked) or a file, as the network `build(config)` makes, in eval mode and
    frozen; with `base`, it must have been made for that checkpoint."""
    path = companion_file(table, name_or_path, f"train one with `zoo {command} BASE`", registry)
    config, tensors = read_companion(path, format, base, kind, command)
    module = build(config)
    try:
        module.load_state_dict(tensors)
    except RuntimeError as error:
        raise ZooError(f"{path}: weights do not fit its recorded configuration ({str(error).splitlines()[0]})") from None
    return module.eval().requires_grad_(False)
