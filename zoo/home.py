"""Where a zoo keeps its state: `checkpoints/` and `registry.toml` under the zoo home.

The home is `$ZOO_HOME` when set, else the checkout's root when zoo runs from a source tree (so the shipped
emoji models are found), else the platform's user data directory. Several zoos can be kept apart with ZOO_HOME.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from .errors import ZooError

SOURCE_TREE_MARKER = 'name = "zoo-stylegan"'


def source_tree_root() -> Path | None:
    """The checkout that holds this package, if zoo runs from one (the root has zoo's pyproject.toml)."""
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and SOURCE_TREE_MARKER in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def zoo_home() -> Path:
    if os.environ.get("ZOO_HOME"):
        home = Path(os.environ["ZOO_HOME"]).expanduser().resolve()
        if home.exists() and not home.is_dir():
            raise ZooError(f"ZOO_HOME={os.environ['ZOO_HOME']}: {home} is not a folder; point ZOO_HOME at a folder (it is created if missing)")
        return home
    return source_tree_root() or Path(platformdirs.user_data_dir("zoo", appauthor=False))


def recorded_path(path: str | Path, home: Path | None = None) -> str:
    """A path as the registry and lineage record it: relative to the zoo home (default: `zoo_home()`) when inside it,
    so a shipped zoo names none of its builder's folders; else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to((home or zoo_home()).resolve()).as_posix()
    except ValueError:
        return str(path)


def checkpoints_dir() -> Path:
    return zoo_home() / "checkpoints"


def registry_path() -> Path:
    return zoo_home() / "registry.toml"
