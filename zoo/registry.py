"""registry.toml: the zoo's state, one `[domains.NAME]` table per installed model.

Each entry holds the checkpoint file (relative to the zoo home), its sha256, family, resolution, the mapping
network's hash (which defines the family) and the lineage. Every change is a read-modify-write under a file lock,
written atomically, so concurrent `zoo` commands never lose an entry and a crash never leaves half a file.

registry.toml can be edited by hand, so what it says is checked when read: each entry must have its keys with their
types (`RegistryEntry`), and its checkpoint must lie inside `<home>/checkpoints/` (`Registry.checkpoint_path`) before
zoo reads or deletes it.

Installing is a transaction (`Registry.editing`): the new registry document is built and serialised before any file is
written; the checkpoint goes to a temporary file; a journal (`registry.toml.journal`) holding the new document is
written; then the checkpoint is renamed into place and registry.toml written. A failure rolls back (the replaced file
is restored, a new one deleted); a killed process is recovered by the next command that takes the lock: rolled back
before the rename, completed after it, and stale temporary files are deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, get_type_hints

import filelock
import tomli_w

from .checkpoint import ZooModel, load_model, mapping_sha256, save_model
from .errors import ZooError, machine_failure
from .files import atomic_write_bytes, fsync_directory, remove_stale_temps, temp_name
from .home import registry_path, zoo_home
from .model import Discriminator, Generator
from .plugins import registered_domains
from .shipped import seed_home
from .specs import NAME_PATTERN

MAX_NAME_LENGTH = 64
LOCK_TIMEOUT_SECONDS = 60
FORMAT_VERSION = 1
CHECKPOINTS = "checkpoints"
ENCODERS = "encoders"  # the table of image -> latent encoders, one per base (zoo/encoder.py)
TRANSLATORS = "translators"  # the table of feed-forward translators, one per base (zoo/translator.py)
RUNS = "runs"
UNKNOWN_SHA256 = "0" * 64  # stands in for the checkpoint's hash while the document is checked before writing


def check_name(name: str) -> str:
    """Model and domain names are lowercase [a-z0-9-], at most 64 characters: never a path, safe as a file name."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ZooError(f"invalid name {name!r}: use lowercase letters, digits and '-' (e.g. 'anime' or 'emoji-noto')")
    if len(name) > MAX_NAME_LENGTH:
        raise ZooError(f"name {name[:24]}… is {len(name)} characters long: use at most {MAX_NAME_LENGTH}")
    return name


@dataclass(frozen=True)
class RegistryEntry:
    """One installed model as registry.toml records it (`entry.file` or, like the TOML table, `entry["file"]`)."""

    name: str  # the table's key, not stored in it
    file: str
    sha256: str
    family: str
    resolution: int
    mapping_sha256: str
    created: str
    lineage: dict

    def __getitem__(self, key: str):
        if key not in STORED_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def to_toml(self) -> dict:
        return {key: getattr(self, key) for key in STORED_KEYS}

    @classmethod
    def parse(cls, name: str, table, where: Path) -> RegistryEntry:
        """The entry `name` of registry.toml `where`; a one-line ZooError naming it when it is malformed."""
        if not isinstance(table, dict):
            problem = "is not a table"
        elif not NAME_PATTERN.match(name) or len(name) > MAX_NAME_LENGTH:
            problem = f"has an invalid name (lowercase letters, digits and '-', at most {MAX_NAME_LENGTH})"
        else:
            missing = [key for key in STORED_KEYS if key not in table]
            wrong = [key for key in STORED_KEYS if key in table and not _has_type(table[key], STORED_TYPES[key])]
            problem = (f"lacks {', '.join(missing)}" if missing else
                       f"has {wrong[0]} = {table[wrong[0]]!r}, which should be {STORED_TYPES[wrong[0]].__name__}" if wrong else None)  # fmt: skip
        if problem:
            raise ZooError(f"{where}: entry {_table(name)} {problem}; correct it by hand, or delete that table and "
                           "re-install the model")  # fmt: skip
        return cls(name=name, **{key: table[key] for key in STORED_KEYS})


@dataclass(frozen=True)
class CompanionEntry:
    """One installed network made for a base model, an encoder or a translator (zoo/companions.py writes them), as
    its table of registry.toml (`encoders`, `translators`) records it; a field the table lacks is None."""

    name: str  # the table's key
    file: str | None = None
    sha256: str | None = None
    kind: str | None = None  # 'encoder', 'translator'
    family: str | None = None
    base: str | None = None
    base_sha256: str | None = None
    backbone: str | None = None  # encoders: the timm backbone
    targets: list | None = None  # translators: the domains it translates into
    created: str | None = None
    lineage: dict | None = None

    @classmethod
    def from_table(cls, name: str, table: dict) -> CompanionEntry:
        return cls(name=name, **{item.name: table.get(item.name) for item in fields(cls) if item.name != "name"})


STORED_TYPES = {key: kind for key, kind in get_type_hints(RegistryEntry).items() if key != "name"}
STORED_KEYS = tuple(STORED_TYPES)


def _table(name: str, table: str = "domains") -> str:
    """How registry.toml spells the entry's table header (a name that is not a bare key is quoted)."""
    return f"[{table}.{name if NAME_PATTERN.match(name) else json.dumps(name)}]"


def _has_type(value, kind: type) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


@dataclass
class RegistryEdit:
    """What a locked edit changes: the domains table, checkpoints staged to be renamed into place, files to delete."""

    domains: dict[str, RegistryEntry]
    tables: dict[str, dict] = field(default_factory=dict)  # the file's other tables (e.g. encoders), as stored
    staged: dict[Path, Path] = field(default_factory=dict)  # destination -> its temporary file
    deletions: list[Path] = field(default_factory=list)

    def stage(self, destination: Path) -> Path:
        """A temporary path for the new content of `destination`, renamed into place when the edit commits."""
        self.staged[destination] = temp_name(destination)
        return self.staged[destination]


class Registry:
    def __init__(self, path: str | Path | None = None):
        if path is None:
            seed_home(zoo_home())  # a wheel's first use of a home: the shipped models (zoo/shipped.py)
        self.path = Path(path) if path else registry_path()
        self.home = self.path.parent
        self.journal = self.path.with_name(self.path.name + ".journal")

    def domains(self) -> dict[str, RegistryEntry]:
        """name -> entry, validated (an empty zoo has no file yet)."""
        table = self.table("domains")
        return {name: RegistryEntry.parse(name, entry, self.path) for name, entry in table.items()}

    def companions(self, table: str) -> dict[str, CompanionEntry]:
        """{name: CompanionEntry} of a companions' table (`encoders`, `translators`)."""
        return {name: CompanionEntry.from_table(name, entry) for name, entry in self.table(table).items()}

    def table(self, table: str) -> dict[str, dict]:
        """One top-level table of the file (`domains`, or another such as `encoders`), name -> entry as stored."""
        entries = self.document().get(table, {})
        if not isinstance(entries, dict) or not all(isinstance(entry, dict) for entry in entries.values()):
            raise ZooError(f"{self.path}: '{table}' is not a table of tables; restore the file from version control or a backup")
        return entries

    def other_tables(self) -> dict[str, dict]:
        """Every top-level table but the domains (kept as stored when the registry is rewritten)."""
        return {table: self.table(table) for table in self.document() if table not in ("format_version", "domains")}

    def document(self) -> dict:
        """The whole file, parsed, its format version checked (an empty zoo has no file yet)."""
        if not os.path.lexists(self.path):
            return {}
        if not self.path.is_file():
            raise ZooError(f"{self.path}: not a file; move it away (zoo writes the registry as a TOML file there)")
        try:
            document = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ZooError(f"{self.path}: not valid TOML ({error}); restore it from version control or a backup") from None
        except OSError as error:
            raise ZooError(f"{self.path}: cannot be read ({error.strerror}); check its permissions") from None
        if document.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
            raise ZooError(f"{self.path}: format_version {document['format_version']!r}, this zoo reads {FORMAT_VERSION}; upgrade zoo")
        return document

    def get(self, name: str) -> RegistryEntry | None:
        return self.domains().get(name)

    @contextlib.contextmanager
    def editing(self) -> Iterator[RegistryEdit]:
        """Lock, recover what a killed command left, yield the edit, then commit it (see the module's docstring)."""
        with self._locked():
            self._recover()
            edit = RegistryEdit(self.domains(), self.other_tables())
            try:
                yield edit
                self._commit(edit)
            except OSError as error:
                raise machine_failure(error, self.home, "nothing was changed") from None
            finally:
                for temporary in edit.staged.values():
                    temporary.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            (self.home / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
            with filelock.FileLock(str(lock_path), timeout=LOCK_TIMEOUT_SECONDS):
                yield
        except filelock.Timeout:
            raise ZooError(f"{lock_path}: locked by another zoo command for {LOCK_TIMEOUT_SECONDS}s; retry when it ends") from None
        except OSError as error:
            raise machine_failure(error, lock_path, f"the zoo home {self.home} must be a writable folder") from None

    def serialise(self, domains: dict[str, RegistryEntry], tables: dict[str, dict] | None = None) -> bytes:
        """The registry document, checked to read back as written (TOML cannot hold everything a dict can)."""
        others = {table: dict(sorted(entries.items())) for table, entries in sorted((tables or {}).items())}
        document = {"format_version": FORMAT_VERSION, **others,
                    "domains": {name: entry.to_toml() for name, entry in sorted(domains.items())}}  # fmt: skip
        data, problem = _toml_round_trip(document)
        if problem:
            entries = [(name, entry.to_toml()) for name, entry in sorted(domains.items())]
            entries += [(name, entry) for table in others.values() for name, entry in table.items()]
            unstorable = [name for name, entry in entries if _toml_round_trip(entry)[1]]
            raise ZooError(f"{self.path}: entry {', '.join(unstorable) or '?'} cannot be stored as TOML ({problem}); "
                           "its lineage must hold plain strings, numbers, lists and tables of modest depth")  # fmt: skip
        return data

    def _commit(self, edit: RegistryEdit) -> None:
        document = self.serialise(edit.domains, edit.tables)
        if edit.staged:
            journal = {"registry": document.decode("utf-8"), "renames": [[tmp.name, dest.name] for dest, tmp in edit.staged.items()]}
            atomic_write_bytes(self.journal, json.dumps(journal).encode("utf-8"))
            backups = {}
            try:
                for destination, temporary in edit.staged.items():
                    if os.path.lexists(destination):
                        backups[destination] = temp_name(destination)
                        os.link(destination, backups[destination])
                    os.replace(temporary, destination)
                fsync_directory(self.home / CHECKPOINTS)
                atomic_write_bytes(self.path, document)
            except BaseException:
                self._roll_back(edit.staged, backups)
                raise
            finally:
                for backup in backups.values():
                    backup.unlink(missing_ok=True)
            self.journal.unlink()
        else:
            atomic_write_bytes(self.path, document)
        for path in edit.deletions:
            _delete(path)

    def _roll_back(self, staged: dict[Path, Path], backups: dict[Path, Path]) -> None:
        for destination, temporary in staged.items():
            if temporary.exists():
                continue  # never renamed into place
            if destination in backups:
                os.replace(backups[destination], destination)
            else:
                destination.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)

    def _recover(self) -> None:
        """Finish or undo what a killed command left: a journal, temporary files (we hold the lock: none is in use)."""
        if self.journal.exists():
            try:
                journal = json.loads(self.journal.read_text(encoding="utf-8"))
                renames = [(self._checkpoint_named(tmp), self._checkpoint_named(dest)) for tmp, dest in journal["renames"]]
                document = journal["registry"].encode("utf-8")
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise ZooError(f"{self.journal}: unreadable ({_first_line(error)}); delete it (an interrupted install is then lost)") from None
            if any(not tmp.exists() for tmp, _ in renames):  # the rename had begun: complete the install
                for tmp, dest in renames:
                    if tmp.exists():
                        os.replace(tmp, dest)
                atomic_write_bytes(self.path, document)
            self.journal.unlink()
        remove_stale_temps(self.home / CHECKPOINTS)
        remove_stale_temps(self.home, self.path.name)

    def _checkpoint_named(self, name: str) -> Path:
        """checkpoints/NAME for a bare file name from the journal (which is as editable as registry.toml)."""
        if Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(f"{name!r} is not a file name in {CHECKPOINTS}/")
        return self.home / CHECKPOINTS / name

    def remove(self, name: str, *, keep_runs: bool = False) -> list[Path]:
        """Drop the entry, delete its checkpoint and (unless keep_runs) its training run; returns what was deleted."""
        with self.editing() as edit:
            entry = edit.domains.pop(name, None)
            if entry is None:
                raise ZooError(f"model {name!r} is not installed; see `zoo list --installed`")
            edit.deletions.extend(self.removal(entry, keep_runs=keep_runs))
        return edit.deletions

    def removal(self, entry: RegistryEntry, *, keep_runs: bool = False) -> list[Path]:
        """What removing the model deletes: its checkpoint and (unless keep_runs) its training run, if any."""
        run = self.run_dir(entry.name)
        return [self.checkpoint_path(entry)] + ([] if keep_runs or not os.path.lexists(run) else [run])

    def checkpoint_path(self, entry: RegistryEntry) -> Path:
        """Where the entry's checkpoint is; refused unless inside <home>/checkpoints/ once symlinks are resolved."""
        return self.contained_file(entry.name, entry.file)

    def contained_file(self, name: str, file, table: str = "domains") -> Path:
        """The file an entry of `table` names, refused unless inside <home>/checkpoints/ once symlinks are resolved."""
        folder = os.path.realpath(self.home / CHECKPOINTS)
        path = self.home / file if isinstance(file, str) else None
        if path is None or os.path.dirname(os.path.realpath(path)) != folder:
            raise ZooError(
                f"{self.path}: entry {_table(name, table)} has file = {file!r}, which is not inside {folder}; "
                f"set it to '{CHECKPOINTS}/{name}.safetensors' or delete the entry"
            )
        return path

    def model_file(self, name: str) -> Path:
        """Where model `name` is (or would be) installed: checkpoints/NAME.safetensors."""
        return self.home / CHECKPOINTS / f"{check_name(name)}.safetensors"

    def run_dir(self, name: str) -> Path:
        """Where `zoo train-base` / `zoo add-domain` keep model `name`'s run (snapshots, samples, metrics)."""
        return self.home / RUNS / check_name(name)

    def unregistered_files(self, domains: dict[str, RegistryEntry] | None = None) -> list[Path]:
        """Checkpoints in checkpoints/ that no entry names (e.g. left by a crash, or copied in by hand)."""
        domains = self.domains() if domains is None else domains
        files = [entry.file for entry in domains.values()]
        files += [entry.get("file") for table in self.other_tables().values() for entry in table.values()]
        registered = {os.path.realpath(self.home / file) for file in files if isinstance(file, str)}
        folder = self.home / CHECKPOINTS
        return sorted(path for path in folder.glob("*.safetensors") if os.path.realpath(path) not in registered)

    def check_free(self, name: str, force: bool, domains: dict | None = None) -> None:
        """Refuse to replace an installed model (or a stray file in its place) unless `force`."""
        destination = self.model_file(name)
        if force:
            return
        if name in (self.domains() if domains is None else domains):
            raise ZooError(f"{destination}: model '{name}' already exists; pass --force to replace it, or choose another name")
        if os.path.lexists(destination):
            raise ZooError(f"{destination}: an unregistered file (no entry in {self.path.name}) is where model '{name}' "
                           "would go; pass --force to replace it, or delete the file")  # fmt: skip

    def derived_from(self, name: str) -> list[str]:
        """Installed models whose lineage names `name` as their base or swap target (fine-tuned or swapped from it)."""
        return sorted(other for other, entry in self.domains().items()
                      if other != name and name in (entry.lineage.get("base"), entry.lineage.get("target")))  # fmt: skip


def _delete(path: Path) -> None:
    """A file, a symlink (not what it points to) or a folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def check_declared_domain(name: str, family: str, resolution: int, force: bool) -> None:
    """A name a plugin declares is for a model of that domain (its family and resolution), unless `force`."""
    spec = registered_domains().get(name)
    if spec is not None and not force and (spec.family, spec.resolution) != (family, resolution):
        raise ZooError(
            f"{name!r} is the {spec.resolution}px domain of family {spec.family!r} (plugin {spec.plugin}), but this model is "
            f"{resolution}px of family {family!r}; choose another name, or pass --force to use that name anyway"
        )


def check_installable(
    name: str,
    *,
    force: bool = False,
    family: str | None = None,
    keeps_mapping_of: str | None = None,
    resolution: int | None = None,
    registry: Registry | None = None,
) -> None:
    """Refuse before training what installing would refuse after it.

    That is an existing model without force, a family whose mapping network the result will not have, or a name a
    plugin declares for another family or resolution. keeps_mapping_of is the family whose mapping the result keeps
    (the base's under FreezeFC), else None.
    """
    registry = registry or Registry()
    domains = registry.domains()
    registry.check_free(name, force, domains)
    family = family or keeps_mapping_of or name
    if resolution is not None:
        check_declared_domain(name, family, resolution, force)
    members = [other for other, entry in domains.items() if entry.family == family and other != name]
    if members and family != keeps_mapping_of:
        raise ZooError(
            f"family '{family}' ({', '.join(sorted(members))}) shares a mapping network this model will not have "
            "(only FreezeFC fine-tuning keeps the base's); choose another --family"
        )


def resolve(name_or_path: str | Path, registry: Registry | None = None) -> tuple[Path, str | None]:
    """A registered name -> (its checkpoint, the sha256 to verify); an existing path -> (path, None)."""
    registry = registry or Registry()
    entry = registry.get(str(name_or_path)) if NAME_PATTERN.match(str(name_or_path)) else None
    if entry is not None:
        return registry.checkpoint_path(entry), entry.sha256
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path, None
    raise ZooError(
        f"{name_or_path}: neither an installed model (zoo home {zoo_home()}) nor a file; "
        "see `zoo list`, or bring a checkpoint in with `zoo import PATH --name NAME`"
    )


def load(name_or_path: str | Path, *, device="cpu", with_discriminator: bool | str = False,
         registry: Registry | None = None) -> ZooModel:
    """The one way to load a model: an installed one by name (its sha256 checked against registry.toml, and recorded
    in `ZooModel.sha256`) or a checkpoint file by path. with_discriminator: True, False or "auto" (when it has one)."""
    path, sha256 = resolve(name_or_path, registry)
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
) -> RegistryEntry:
    """Save `checkpoints/NAME.safetensors` and record it in registry.toml, as one transaction; returns the entry.

    Refuses to replace an existing model without `force`, a family whose mapping network differs, and a name a plugin
    declares for another family or resolution (without `force`).
    """
    registry = registry or Registry()
    check_name(name)
    check_name(family)
    check_declared_domain(name, family, generator.config.size, force)
    destination = registry.model_file(name)
    mapping = mapping_sha256(generator.state_dict())
    with registry.editing() as edit:
        registry.check_free(name, force, edit.domains)
        members = sorted(other for other, entry in edit.domains.items() if entry.family == family and other != name)
        if members and edit.domains[members[0]].mapping_sha256 != mapping:
            raise ZooError(
                f"'{name}' cannot join family '{family}' ({', '.join(members)}): its mapping network differs; "
                "choose another --family (a family shares one mapping network)"
            )
        entry = RegistryEntry(
            name=name, file=f"{CHECKPOINTS}/{destination.name}", sha256=UNKNOWN_SHA256, family=family,
            resolution=generator.config.size, mapping_sha256=mapping,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"), lineage=lineage,
        )  # fmt: skip
        registry.serialise({**edit.domains, name: entry}, edit.tables)  # a lineage TOML cannot hold fails here, before any write
        sha256 = save_model(edit.stage(destination), generator, domain=name, family=family, lineage=lineage,
                            discriminator=discriminator)  # fmt: skip
        edit.domains[name] = replace(entry, sha256=sha256)
    return edit.domains[name]


def _toml_round_trip(document: dict) -> tuple[bytes, str | None]:
    """(the TOML bytes, None) when `document` (None values dropped) is written and read back unchanged, else
    (b"", what went wrong)."""
    try:
        document = _toml_safe(document)
        text = tomli_w.dumps(document)
        same = json.dumps(tomllib.loads(text), sort_keys=True) == json.dumps(document, sort_keys=True)
        return (text.encode("utf-8"), None) if same else (b"", "it does not read back as written")
    except (ValueError, TypeError, RecursionError) as error:  # UnicodeEncodeError is a ValueError
        return b"", _first_line(error)


def _toml_safe(value):
    """TOML has no null: drop None values, recursively."""
    if isinstance(value, dict):
        return {str(key): _toml_safe(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [_toml_safe(item) for item in value if item is not None]
    return value


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
