"""registry.toml: the zoo's state, one `[domains.NAME]` table per installed model.

Each entry holds the checkpoint file (relative to the zoo home), its sha256, family, resolution, the mapping
network's hash (which defines the family) and the lineage. Every change is a read-modify-write under a file lock,
written atomically, so concurrent `zoo` commands never lose an entry and a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import filelock
import tomli_w

from .checkpoint import ZooModel, load_model, mapping_sha256, save_model
from .errors import ZooError
from .files import atomic_write_bytes
from .home import recorded_path, registry_path, zoo_home
from .model import Discriminator, Generator

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
LOCK_TIMEOUT_SECONDS = 60


def check_name(name: str) -> str:
    """Model and domain names are lowercase [a-z0-9-]: never a path, safe as a file name."""
    if not NAME_PATTERN.match(name or ""):
        raise ZooError(f"invalid name {name!r}: use lowercase letters, digits and '-' (e.g. 'anime' or 'emoji-noto')")
    return name


class Registry:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else registry_path()
        self.home = self.path.parent

    def domains(self) -> dict[str, dict]:
        """name -> entry, as stored (an empty zoo has no file yet)."""
        return self.table("domains")

    def table(self, table: str) -> dict[str, dict]:
        """One top-level table of the file (`domains`, or e.g. `encoders`), name -> entry."""
        return self.document().get(table, {})

    def document(self) -> dict:
        if not self.path.is_file():
            return {}
        try:
            return tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ZooError(f"{self.path}: not valid TOML ({error}); restore it from version control or a backup") from None

    def get(self, name: str) -> dict | None:
        return self.domains().get(name)

    @contextlib.contextmanager
    def editing(self, table: str = "domains") -> Iterator[dict[str, dict]]:
        """Lock, yield one table (default: the domains) for changes, then write the file back atomically; the other
        tables are kept as they were."""
        self.home.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT_SECONDS)
        try:
            with lock:
                document = self.document()
                entries = document.get(table, {})
                yield entries
                document = {**document, "format_version": 1, table: {name: _toml_safe(entry) for name, entry in sorted(entries.items())}}
                atomic_write_bytes(self.path, tomli_w.dumps(document).encode("utf-8"))
        except filelock.Timeout:
            raise ZooError(f"{self.path}: locked by another zoo command for {LOCK_TIMEOUT_SECONDS}s; retry when it ends") from None

    def remove(self, name: str) -> None:
        """Drop the entry, then its checkpoint (a crash in between leaves an orphan file, never a dangling entry)."""
        with self.editing() as domains:
            entry = domains.pop(name, None)
        if entry is not None:
            self.checkpoint_path(entry).unlink(missing_ok=True)

    def checkpoint_path(self, entry: dict) -> Path:
        return self.home / entry["file"]

    def model_file(self, name: str) -> Path:
        """Where model `name` is (or would be) installed: checkpoints/NAME.safetensors."""
        return self.home / "checkpoints" / f"{check_name(name)}.safetensors"

    def check_free(self, name: str, force: bool, domains: dict | None = None) -> None:
        """Refuse to replace an installed model (or a stray file in its place) unless `force`."""
        destination = self.model_file(name)
        if not force and (name in (self.domains() if domains is None else domains) or destination.exists()):
            raise ZooError(f"{destination}: model '{name}' already exists; pass --force to replace it, or choose another name")


def resolve(name_or_path: str | Path, registry: Registry | None = None) -> tuple[Path, str | None]:
    """A registered name -> (its checkpoint, the sha256 to verify); an existing path -> (path, None)."""
    registry = registry or Registry()
    entry = registry.get(str(name_or_path)) if NAME_PATTERN.match(str(name_or_path)) else None
    if entry is not None:
        return registry.checkpoint_path(entry), entry["sha256"]
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path, None
    raise ZooError(
        f"{name_or_path}: neither an installed model (zoo home {zoo_home()}) nor a file; "
        "see `zoo list`, or bring a checkpoint in with `zoo import PATH --name NAME`"
    )


def load(name_or_path: str | Path, *, device="cpu", with_discriminator: bool = False) -> ZooModel:
    """Load an installed model by name (its sha256 checked against registry.toml) or a checkpoint file by path."""
    path, sha256 = resolve(name_or_path)
    return load_model(path, expected_sha256=sha256, with_discriminator=with_discriminator, device=device)


def install_model(
    name: str,
    generator: Generator,
    *,
    family: str,
    lineage: dict,
    discriminator: Discriminator | None = None,
    force: bool = False,
    registry: Registry | None = None,
) -> dict:
    """Save `checkpoints/NAME.safetensors` and record it in registry.toml; returns the registry entry.

    Refuses to replace an existing model without `force`, and refuses a family whose mapping network differs.
    """
    registry = registry or Registry()
    check_name(name)
    check_name(family)
    destination = registry.model_file(name)
    mapping = mapping_sha256(generator.state_dict())
    with registry.editing() as domains:
        registry.check_free(name, force, domains)
        members = sorted(other for other, entry in domains.items() if entry.get("family") == family and other != name)
        if members and domains[members[0]]["mapping_sha256"] != mapping:
            raise ZooError(
                f"'{name}' cannot join family '{family}' ({', '.join(members)}): its mapping network differs; "
                "choose another --family (a family shares one mapping network)"
            )
        sha256 = save_model(destination, generator, domain=name, family=family, lineage=lineage, discriminator=discriminator)
        domains[name] = {
            "file": recorded_path(destination, registry.home),
            "sha256": sha256,
            "family": family,
            "resolution": generator.config.size,
            "mapping_sha256": mapping,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "lineage": lineage,
        }
        return domains[name]


def _toml_safe(value):
    """TOML has no null: drop None values, recursively."""
    if isinstance(value, dict):
        return {str(key): _toml_safe(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [_toml_safe(item) for item in value if item is not None]
    return value
