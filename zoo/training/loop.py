"""A training run: a base model from scratch, or the paper's fine-tuning of a base model into a new domain (`train`).

The recipe is rosinality's train.py, which the paper's authors used: the non-saturating logistic loss, lazy R1
regularisation of D every 16 steps, path-length regularisation of G every 4 steps, style mixing with probability 0.9,
Adam (lr 0.002, betas (0, 0.99)) with the lazy-regularisation correction, and an EMA copy of G, the model that is kept.
Additions: differentiable augmentation for small datasets (`zoo.augment`), an EMA half-life measured in images (so it
scales with the batch) with ADA's ramp-up, and mixed precision on CUDA.

Fine-tuning (paper, Sec. III-B): G and G_ema start from the base's G_ema, D from the base's D.
- FreezeFC keeps the mapping network (`style.*`) exactly the base's, so the new domain shares the base's W space and
  joins its family. The authors' code froze g_ema.style, which is never optimised, and so trained the mapping anyway
  (docs: paper-vs-official-code). Here the base's G_ema mapping is copied into G and G_ema, G's mapping gets no
  gradient, is not in the optimiser and is skipped by the EMA update, so it stays bit-identical to the base's.
- FreezeD K freezes the K discriminator blocks nearest the input: block 1 is FromRGB (`convs.0`) with the top residual
  block (`convs.1`, at full resolution), block k >= 2 is `convs.k` (at size / 2^(k-1)).

The step itself is `trainer.Trainer`'s, the losses `loss`, the EMA `ema`; snapshots, logs, stopping on Ctrl-C and the
distributed setup have a module each. Installing the result in the registry: `install`.

A run lives in a directory: `snapshot.pt` (everything needed to resume, written atomically), `metrics.jsonl` and
`samples/NNNNNN.png`. The first Ctrl-C (or SIGTERM) finishes the current step, writes a snapshot and raises
KeyboardInterrupt; a second Ctrl-C stops at once, leaving the previous snapshot.
"""

from __future__ import annotations

import copy
import functools
import random
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..checkpoint import ZooModel
from ..data import EpochSampler, PreparedDataset, prepare_dataset
from ..devices import dtype_name
from ..errors import ZooError
from ..files import sha256_file
from ..home import recorded_path
from ..logging_sinks import TrainingSink
from ..model import Discriminator, Generator, ModelConfig
from ..registry import Registry, load
from .config import RESUMABLE_CHANGES, TrainConfig
from .distributed import DistributedContext, init_distributed, training_device
from .logs import METRICS_FILE, MetricsLog, write_samples
from .snapshot import (
    SNAPSHOT_FILE,
    SNAPSHOT_FORMAT,
    load_snapshot,
    prepare_run_dir,
    restore_rng_state,
    rng_state,
    save_snapshot,
)
from .stop import StopRequest
from .trainer import Trainer

ProgressCallback = Callable[[int, int, "dict | None"], None]  # (steps done, total, metrics on log steps else None)


@dataclass
class BaseRecord:
    """What the lineage of a fine-tuned model records about its base."""

    name: str
    family: str
    sha256: str


@dataclass
class TrainResult:
    generator: Generator  # G_ema: the model to keep
    discriminator: Discriminator
    config: TrainConfig
    steps: int
    wall_time_seconds: float
    metrics: dict  # the last logged metrics
    data: dict  # root, images, skipped
    augment: dict  # mode, final p
    precision: str  # the dtype the adversarial steps ran in (the recipe may say 'auto')
    base: BaseRecord | None
    run_dir: Path
    is_main_process: bool = True


@dataclass
class _Run:
    """What a snapshot records besides the trainer's state, checked when resuming."""

    config: TrainConfig
    model_config: ModelConfig
    data: PreparedDataset
    augment_mode: str
    base: BaseRecord | None
    run_dir: Path
    wall_time_before: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def wall_time(self) -> float:
        return self.wall_time_before + time.perf_counter() - self.started

    def snapshot_state(self, trainer: Trainer) -> dict:
        return {
            "format": SNAPSHOT_FORMAT,
            "trainer": trainer.state_dict(),
            "rng": rng_state(),
            "train_config": self.config.to_dict(),
            "model_config": self.model_config.to_dict(),
            "data_digest": self.data_digest,
            "augment_mode": self.augment_mode,
            "base": asdict(self.base) if self.base else None,
            "wall_time_seconds": self.wall_time(),
        }

    @functools.cached_property
    def data_digest(self) -> str:
        return self.data.digest()

    def same_data(self, snapshot: dict) -> bool:
        """Same images as the snapshot's run. Older snapshots hold only the cache's fingerprint (file sizes and
        modification times), which a fresh clone of the same data changes."""
        if "data_digest" in snapshot:
            return snapshot["data_digest"] == self.data_digest
        return snapshot["data_fingerprint"] == self.data.fingerprint

    def check_resumable(self, snapshot: dict) -> None:
        """A resumed run must compute what the interrupted one would have: same settings, model, data and base."""
        where = self.run_dir / SNAPSHOT_FILE
        step = snapshot["trainer"]["step"]
        saved = TrainConfig.from_dict(snapshot["train_config"])
        changed = [
            f"{item.name} {getattr(saved, item.name)!r} -> {getattr(self.config, item.name)!r}"
            for item in fields(TrainConfig)
            if item.name not in RESUMABLE_CHANGES and getattr(saved, item.name) != getattr(self.config, item.name)
        ]
        if changed:
            raise ZooError(f"{where}: settings differ from the snapshot's ({'; '.join(changed)}); resume with those")
        if snapshot["model_config"] != self.model_config.to_dict():
            raise ZooError(f"{where}: the snapshot has another architecture ({snapshot['model_config']}); use that one")
        if not self.same_data(snapshot):
            raise ZooError(f"{where}: the images in {self.data.root} changed since the snapshot; restore them")
        if snapshot["base"] != (asdict(self.base) if self.base else None):
            raise ZooError(f"{where}: the snapshot was fine-tuned from another base ({snapshot['base']}); use that one")
        if step > self.config.iters:
            raise ZooError(f"{where}: the snapshot is at step {step}, past --iters {self.config.iters}; raise --iters")


def load_base(name_or_path: str | Path, device: str | torch.device = "cpu") -> ZooModel:
    """A base model for fine-tuning: its G_ema, and its D when the checkpoint holds one."""
    return load(name_or_path, device=device, with_discriminator="auto")


def default_run_dir(name: str) -> Path:
    return Registry().run_dir(name)


def train(
    config: TrainConfig,
    data_root: str | Path,
    run_dir: str | Path,
    *,
    model_config: ModelConfig | None = None,
    base: ZooModel | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    cache_dir: str | Path | None = None,
    include: Callable[[Path], bool] | None = None,
    progress: ProgressCallback | None = None,
    sinks: Sequence[TrainingSink] = (),
    provenance: dict | None = None,
) -> TrainResult:
    """Train from scratch (`model_config`) or fine-tune (`base`, e.g. from `load_base`) on the images in data_root
    (those `include(path)` accepts, when given).

    Under torchrun every process calls this; the batch is global, and only rank 0 writes files. With resume=True
    the run continues from run_dir's snapshot (if any); without it an existing snapshot is a ZooError, so no run is
    overwritten by accident. The images are cached in cache_dir (default: run_dir/data). Besides metrics.jsonl and
    the sample grids, rank 0 hands each logged step's metrics and each grid to `sinks` (zoo/logging_sinks.py); the
    grids' PNGs record `provenance` (e.g. the model's name and data licence) with the run's base, step and seed.
    """
    if (model_config is None) == (base is None):
        raise ValueError("give model_config (train from scratch) or base (fine-tune), not both or neither")
    if config.freeze_fc and base is None:
        raise ZooError("FreezeFC keeps a base model's mapping network: it needs a base (fine-tuning), not a new model")
    run_dir = Path(run_dir)
    if not resume and (run_dir / SNAPSHOT_FILE).is_file():
        raise ZooError(f"{run_dir / SNAPSHOT_FILE}: a run is already there; pass --resume, or delete {run_dir}")
    context = init_distributed()
    try:
        device = training_device(device, context)
        run = _start_run(config, data_root, run_dir, model_config, base, cache_dir, include, context)
        trainer = Trainer(config, *_initial_models(run, base), augment_mode=run.augment_mode, device=device,
                          rank=context.rank, world_size=context.world_size)  # fmt: skip
        snapshot = load_snapshot(run_dir, device) if resume else None
        if snapshot is not None:
            run.check_resumable(snapshot)
            trainer.load_state_dict(snapshot["trainer"])
            restore_rng_state(snapshot["rng"])
            run.wall_time_before = snapshot["wall_time_seconds"]
        elif resume:
            warnings.warn(f"{run_dir}: no snapshot to resume from; starting a new run", stacklevel=2)
        grid_provenance = {"command": "train", "run": run_dir.name, **(provenance or {}),
                           "base": asdict(run.base) if run.base else None}  # fmt: skip
        metrics = _train_loop(trainer, run, context, progress, sinks, grid_provenance)
        return _result(trainer, run, metrics, context)
    finally:
        context.close()


def _start_run(config, data_root, run_dir, model_config, base, cache_dir, include, context) -> _Run:
    if base is not None:
        base_sha256 = sha256_file(base.info.path)
        base_info = BaseRecord(name=base.info.domain, family=base.info.family, sha256=base_sha256)
        model_config = base.info.config
    else:
        base_info = None
    if context.is_main:
        prepare_run_dir(run_dir)
    # Rank 0 decodes the images and writes the cache; the others then read it.
    cache_dir = Path(cache_dir) if cache_dir else run_dir / "data"
    data = prepare_dataset(data_root, model_config.size, cache_dir, include=include) if context.is_main else None
    context.barrier()
    data = data or prepare_dataset(data_root, model_config.size, cache_dir, include=include)
    if data.skipped and context.is_main:
        warnings.warn(f"{data.root}: {data.skip_report()}", stacklevel=3)
    return _Run(config, model_config, data, config.augment_mode(len(data)), base_info, run_dir)


def _initial_models(run: _Run, base: ZooModel | None) -> tuple[Generator, Discriminator]:
    torch.manual_seed(run.config.seed)
    random.seed(run.config.seed)
    if base is None:
        return Generator(run.model_config), Discriminator(run.model_config)
    generator = copy.deepcopy(base.generator)
    if not run.config.freeze_fc:
        generator.latent_avg = None  # the mapping will change, so the base's truncation centre no longer applies
    if base.discriminator is not None:
        return generator, copy.deepcopy(base.discriminator)
    warnings.warn(
        f"{base.info.path}: the base checkpoint has no discriminator; D starts from random weights, "
        "so fine-tuning needs more iterations", stacklevel=3
    )  # fmt: skip
    return generator, Discriminator(run.model_config)


def _train_loop(trainer: Trainer, run: _Run, context: DistributedContext, progress: ProgressCallback | None,
                sinks: Sequence[TrainingSink], grid_provenance: dict) -> dict:  # fmt: skip
    cfg, run_dir = run.config, run.run_dir
    sampler = EpochSampler(len(run.data), cfg.batch, cfg.seed, context.rank, context.world_size)
    log = MetricsLog(run_dir / METRICS_FILE)
    if context.is_main:
        log.truncate_after(trainer.step)
    metrics: dict = {}
    last_log_step, last_log_time = trainer.step, time.perf_counter()
    if progress:
        progress(trainer.step, cfg.iters, None)
    with StopRequest() as stop:
        while trainer.step < cfg.iters:
            trainer.train_step(run.data.images[sampler.indices(trainer.step)])
            done = trainer.step
            logged = None
            if done % cfg.log_every == 0 or done == cfg.iters:
                now = time.perf_counter()
                seconds_per_step = (now - last_log_time) / (done - last_log_step)
                metrics = {"step": done, **trainer.metrics(), "sec_per_it": float(f"{seconds_per_step:.4g}")}
                last_log_step, last_log_time, logged = done, now, metrics
                if context.is_main:
                    log.append(metrics)
                    for sink in sinks:
                        sink.metrics(done, metrics)
            if stop.agreed(done, context.world_size, trainer.device):
                if context.is_main:
                    save_snapshot(run_dir, run.snapshot_state(trainer))
                raise KeyboardInterrupt
            if context.is_main and (done % cfg.snapshot_every == 0 or done == cfg.iters):
                save_snapshot(run_dir, run.snapshot_state(trainer))
            if context.is_main and (done % cfg.sample_every == 0 or done == cfg.iters):
                samples = write_samples(run_dir, done, trainer.g_ema, cfg.seed, grid_provenance)
                for sink in sinks:
                    sink.samples(done, samples)
            if progress:
                progress(done, cfg.iters, logged)
    return metrics


def _result(trainer: Trainer, run: _Run, metrics: dict, context: DistributedContext) -> TrainResult:
    return TrainResult(
        generator=trainer.g_ema,
        discriminator=trainer.d.eval(),
        config=run.config,
        steps=trainer.step,
        wall_time_seconds=run.wall_time(),
        metrics=metrics,
        data={"root": recorded_path(run.data.root), "images": len(run.data), "skipped": len(run.data.skipped)},
        augment={"mode": run.augment_mode, "p": trainer.augment.p},
        precision=dtype_name(trainer.compute_dtype),
        base=run.base,
        run_dir=run.run_dir,
        is_main_process=context.is_main,
    )
