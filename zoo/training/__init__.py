"""StyleGAN2 training, a module per job: `config` (TrainConfig), `loss`, `ema`, `trainer` (models, optimisers, one
step), `loop` (a run: data, resume, snapshots, `train`), `snapshot`, `logs`, `stop`, `distributed`, and `install`
(into the registry). The public names are re-exported here, as before the split."""

import warnings

from ..registry import check_installable
from .config import AUGMENT_MODES, RESUMABLE_CHANGES, TrainConfig, resolve_config, setting
from .distributed import DistributedContext, init_distributed, training_device
from .ema import accumulate_ema, ema_decay
from .install import install_result, train_and_install
from .logs import METRICS_FILE, SAMPLES_DIR, MetricsLog, write_samples
from .loop import BaseRecord, ProgressCallback, TrainResult, default_run_dir, load_base, train
from .loss import d_loss, g_loss, path_length_penalty, path_lengths, r1_penalty
from .snapshot import SNAPSHOT_FILE, SNAPSHOT_FORMAT, load_snapshot, restore_rng_state, rng_state, save_snapshot
from .stop import StopRequest
from .trainer import BatchRandom, MixingGenerator, Trainer, freeze, frozen_discriminator_prefixes, make_optimizers

__all__ = [
    "AUGMENT_MODES", "METRICS_FILE", "RESUMABLE_CHANGES", "SAMPLES_DIR", "SNAPSHOT_FILE", "SNAPSHOT_FORMAT",
    "BaseRecord", "BatchRandom", "DistributedContext", "MetricsLog", "MixingGenerator", "ProgressCallback",
    "StopRequest", "TrainConfig", "TrainResult", "Trainer",
    "accumulate_ema", "check_installable", "d_loss", "default_run_dir", "ema_decay", "freeze",
    "frozen_discriminator_prefixes", "g_loss", "init_distributed", "install_result", "load_base", "load_snapshot",
    "make_optimizers", "path_length_penalty", "path_lengths", "r1_penalty", "restore_rng_state", "rng_state",
    "resolve_config", "save_snapshot", "setting", "train", "train_and_install", "training_device", "write_samples",
]  # fmt: skip

MOVED_TO_PROGRESS = ("rich_progress", "format_metrics")  # display belongs with the command line: zoo.progress


def __getattr__(name: str):
    """Deprecation aliases for the progress display, which moved to zoo.progress."""
    if name in MOVED_TO_PROGRESS:
        warnings.warn(f"zoo.training.{name} moved to zoo.progress.{name}", DeprecationWarning, stacklevel=2)
        from .. import progress

        return getattr(progress, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
