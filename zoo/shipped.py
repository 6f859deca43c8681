"""The zoo a wheel ships: the checkout's `checkpoints/` and `registry.toml` (the emoji family), which setup.py builds
into the wheel as the package data `zoo/shipped/`, are copied into a zoo home the first time zoo uses it.

In a checkout the home is the checkout itself, which holds them already, and nothing is copied. A home that has a
registry.toml (even one emptied by `zoo remove`) is never seeded again, so removed models stay removed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import machine_failure
from .files import atomic_path, atomic_write_bytes, temp_name

SHIPPED = Path(__file__).parent / "shipped"
REGISTRY = "registry.toml"
CHECKPOINTS = "checkpoints"


def shipped_zoo() -> Path | None:
    """The shipped zoo's folder (checkpoints/ and registry.toml) when zoo was installed from a wheel, else None."""
    return SHIPPED if (SHIPPED / REGISTRY).is_file() else None


def seed_home(home: Path) -> bool:
    """Copy the shipped models and their registry into `home` when it has no registry yet; True when it did."""
    shipped = shipped_zoo()
    registry = home / REGISTRY
    if shipped is None or os.path.lexists(registry):
        return False
    try:
        for source in sorted((shipped / CHECKPOINTS).iterdir()):
            destination = home / CHECKPOINTS / source.name
            if not os.path.lexists(destination):
                with atomic_path(destination) as tmp:
                    shutil.copyfile(source, tmp)
        _create_once(registry, (shipped / REGISTRY).read_bytes())  # last: an interrupted seeding is redone
    except OSError as error:
        raise machine_failure(error, home, "the zoo home must be a writable folder (set ZOO_HOME to one)") from None
    return True


def _create_once(path: Path, data: bytes) -> None:
    """Write `path` unless it exists, atomically: another command that wrote it first (seeded, or installed a model)
    keeps its file."""
    staged = temp_name(path)
    atomic_write_bytes(staged, data)
    try:
        os.link(staged, path)
    except FileExistsError:
        pass
    finally:
        staged.unlink(missing_ok=True)
