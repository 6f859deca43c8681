"""The training run of a companion network (zoo/companions.py): one loop for encoders and translators.

A kind of companion describes its run as a `CompanionTraining` (its network, the loss terms of a step, Adam's betas,
a learning-rate schedule, what a resumed run must share); `train_companion` does the rest. A run lives in
<zoo home>/runs/NAME: one `snapshot.pt` (written atomically, zoo/training/snapshot.py) every `snapshot_every` steps
and at the end, with the network, the optimiser, the CPU RNG state, the step, the wall time and the last losses.
`resume` continues from it when the base and settings are the same (the step count may grow). Each step's batch
comes from (seed, step) alone and the run draws from its own seeded RNG, so a resumed run, also one killed mid-way,
computes what an unbroken one does. `CompanionRun.lineage` is what every companion's lineage records of its run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .checkpoint import ZooModel
from .errors import ZooError
from .files import sha256_file
from .home import zoo_home
from .registry import check_name
from .training.loop import ProgressCallback
from .training.snapshot import SNAPSHOT_FILE, prepare_run_dir, read_snapshot, save_snapshot

RUN_FORMAT_VERSION = 2  # of the snapshot's layout
RESUMABLE_CHANGES = ("iters", "snapshot_every")  # settings a resumed run may change


class RunSettings:
    """The settings of every companion run, which the kinds' settings dataclasses declare with their own defaults;
    checked on creation (a subclass's own `__post_init__` calls this one first)."""

    iters: int
    batch: int
    lr: float
    snapshot_every: int
    seed: int

    def __post_init__(self):
        if self.iters < 1 or self.batch < 1 or self.lr <= 0 or self.snapshot_every < 1:
            raise ZooError("--iters, --batch and --snapshot-every must be at least 1 and --lr positive")


@dataclass
class CompanionTraining:
    """What one kind of companion trains, and how; the loop is `train_companion`'s."""

    kind: str  # 'encoder', 'translator': names the snapshot format and the messages
    base: ZooModel
    config: RunSettings
    build: Callable[[], nn.Module]  # the initial network, called under the run's seed
    losses: Callable[[nn.Module, int], dict[str, torch.Tensor]]  # the terms of step N; "loss" is the one minimised
    identity: dict  # what a resumed run must share besides the base and the settings (backbone, targets, ...)
    identity_words: str  # how the refusal names it all: "base, backbone or settings"
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's
    learning_rate: Callable[[int], float] | None = None  # of step N; None: config.lr throughout

    def run_format(self) -> str:
        return f"zoo-{self.kind}-run-{RUN_FORMAT_VERSION}"

    def full_identity(self) -> dict:
        return {"base_sha256": sha256_file(self.base.info.path), **self.identity, "train_config": asdict(self.config)}


@dataclass
class CompanionRun:
    network: nn.Module  # trained, in eval mode
    steps: int
    wall_time_seconds: float
    metrics: dict  # the last step's loss terms
    run_dir: Path
    config: RunSettings

    def lineage(self, command: str, **settings) -> dict:
        """The run's part of the lineage: steps, wall time, command, settings (the config's, then `settings`), final
        losses and threads."""
        return {"iterations": self.steps, "wall_time_seconds": round(self.wall_time_seconds, 1), "command": command,
                "train_config": asdict(self.config), **settings, "final_losses": self.metrics,
                "torch_threads": torch.get_num_threads()}  # fmt: skip


def train_companion(name: str, training: CompanionTraining, *, resume: bool = False,
                    on_step: ProgressCallback | None = None) -> CompanionRun:  # fmt: skip
    """Train `training`'s network as run NAME (snapshots in <zoo home>/runs/NAME; `resume` continues from the last)."""
    run_dir = zoo_home() / "runs" / check_name(name)
    snapshot = load_run_snapshot(run_dir, training) if resume else None
    if snapshot is None and (run_dir / SNAPSHOT_FILE).exists():
        raise ZooError(f"{run_dir}: a run of this name exists; pass --resume to continue it, or delete the folder")
    identity = training.full_identity()
    config = training.config
    with torch.random.fork_rng(devices=[]):  # the weights, and anything else the run draws, come from its seed
        torch.manual_seed(config.seed)
        network = training.build()
        optimizer = torch.optim.Adam(network.parameters(), lr=config.lr, betas=training.betas)
        step, wall_before, metrics = 0, 0.0, {}
        if snapshot is not None:
            check_same_run(snapshot["identity"], identity, run_dir, training.identity_words)
            step, wall_before, metrics = restore(snapshot, network, optimizer)
        prepare_run_dir(run_dir)
        started = time.perf_counter()
        network.train()
        while step < config.iters:
            if training.learning_rate:
                for group in optimizer.param_groups:
                    group["lr"] = training.learning_rate(step)
            losses = training.losses(network, step)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optimizer.step()
            step += 1
            metrics = {key: round(float(value.detach()), 5) for key, value in losses.items()}
            if step % config.snapshot_every == 0 or step == config.iters:
                save_snapshot(run_dir, {"format": training.run_format(), "model": network.state_dict(),
                                        "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(), "step": step,
                                        "wall_time_seconds": wall_before + time.perf_counter() - started, "metrics": metrics,
                                        "identity": identity})  # fmt: skip
            if on_step:
                on_step(step, config.iters, metrics)
    return CompanionRun(network.eval(), step, wall_before + time.perf_counter() - started, metrics, run_dir, config)


def load_run_snapshot(run_dir: Path, training: CompanionTraining) -> dict | None:
    """The run's snapshot (None when there is none); a damaged or foreign one is a ZooError."""
    state = read_snapshot(run_dir)
    if state is not None and (not isinstance(state, dict) or state.get("format") != training.run_format()):
        raise ZooError(f"{run_dir / SNAPSHOT_FILE}: not a {training.kind} run's snapshot; delete the run directory to "
                       "start over")  # fmt: skip
    return state


def restore(snapshot: dict, network: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, float, dict]:
    """Put the network, optimiser and RNG back as the snapshot holds them; (step, wall time, last losses) so far."""
    network.load_state_dict(snapshot["model"])
    optimizer.load_state_dict(snapshot["optimizer"])
    torch.set_rng_state(snapshot["rng"])
    return snapshot["step"], snapshot["wall_time_seconds"], snapshot["metrics"]


def check_same_run(saved: dict, identity: dict, run_dir: Path, identity_words: str) -> None:
    """A resumed run must continue the same training: same base, identity and settings (the step count may grow)."""
    resumable = {key: identity["train_config"][key] for key in RESUMABLE_CHANGES}
    if {**saved, "train_config": {**saved["train_config"], **resumable}} != identity:
        raise ZooError(f"{run_dir}: the snapshot was made with another {identity_words}; resume with those")
