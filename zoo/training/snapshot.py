"""A run's `snapshot.pt` (everything needed to resume, written atomically) and the global RNG states it holds."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from ..errors import ZooError
from ..files import atomic_path, remove_stale_temps

SNAPSHOT_FILE = "snapshot.pt"
SNAPSHOT_FORMAT = 1


def save_snapshot(run_dir: Path, state: dict) -> Path:
    """Write snapshot.pt atomically: a crash or kill mid-write leaves the previous snapshot as it was."""
    path = Path(run_dir) / SNAPSHOT_FILE
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def prepare_run_dir(run_dir: Path) -> None:
    """Create the run's folder, clearing what a kill during a snapshot write left there."""
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(run_dir, SNAPSHOT_FILE)


def read_snapshot(run_dir: Path, device: torch.device | str = "cpu") -> object | None:
    """The run's snapshot.pt as saved (tensors on `device`), or None if it has none; plain data only (weights_only)."""
    path = Path(run_dir) / SNAPSHOT_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for a damaged zip/pickle
        problem = type(error).__name__
        raise ZooError(f"{path}: unreadable snapshot ({problem}); delete the run directory to start over") from None


def load_snapshot(run_dir: Path, device: torch.device | str = "cpu") -> dict | None:
    """A training run's snapshot (`read_snapshot`) of this module's format, or None if it has none."""
    path = Path(run_dir) / SNAPSHOT_FILE
    state = read_snapshot(run_dir, device)
    if state is None:
        return None
    found = state.get("format") if isinstance(state, dict) else type(state).__name__
    if found != SNAPSHOT_FORMAT:
        raise ZooError(f"{path}: snapshot format {found} is not {SNAPSHOT_FORMAT}; start a new run")
    return state


def rng_state() -> dict:
    """Global RNG states. The loop draws only from (seed, step) generators; these cover anything else that draws."""
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(internal), gauss],
    }


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([cuda_state.cpu() for cuda_state in state["cuda"]])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
