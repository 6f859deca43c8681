"""Where a training run's numbers and sample grids go besides its own files (metrics.jsonl and samples/, which every
run writes): `TrainingSink` is what `zoo.training.train` hands them to, and `TensorBoardSink` writes them as a
TensorBoard event file (`zoo train-base/add-domain --log tensorboard`; `tensorboard --logdir RUN_DIR/tensorboard`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from .errors import ZooError

TENSORBOARD_DIR = "tensorboard"  # in the run directory
INSTALL_HINT = "pip install 'zoo-stylegan[tensorboard]' (or pip install tensorboard)"


class TrainingSink(Protocol):
    def metrics(self, step: int, values: dict[str, float]) -> None:
        """A logged step's numbers (losses, augment_p, ada_rt, sec_per_it, ...; 'step' among them)."""

    def samples(self, step: int, path: Path) -> None:
        """The sample grid just written for `step` (a PNG)."""


class TensorBoardSink:
    """Losses under loss/, the augmentation probability and ADA's r_t under augment/, timing under time/, and each
    sample grid as the image 'samples'. A context manager: the event file is flushed and closed on exit.

    The event file opens at the first step handed over, purging what a killed run logged from that step on, so a
    resumed run (which continues from its last snapshot) shows each step once, as metrics.jsonl does."""

    GROUPS = {"d_loss": "loss", "g_loss": "loss", "r1": "loss", "path_length": "loss", "augment_p": "augment",
              "ada_rt": "augment", "sec_per_it": "time"}  # fmt: skip

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ZooError(f"--log tensorboard needs the tensorboard package; {INSTALL_HINT}") from None
        self.log_dir = Path(log_dir)
        self._open = lambda step: SummaryWriter(log_dir=str(self.log_dir), purge_step=step)
        self._writer = None

    def writer(self, step: int):
        if self._writer is None:
            self._writer = self._open(step)
        return self._writer

    def metrics(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            if name != "step":
                self.writer(step).add_scalar(f"{self.GROUPS.get(name, 'train')}/{name}", value, global_step=step)

    def samples(self, step: int, path: Path) -> None:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self.writer(step).add_image("samples", pixels, global_step=step, dataformats="HWC")

    def __enter__(self) -> "TensorBoardSink":
        return self

    def __exit__(self, *exc_info) -> None:
        if self._writer is not None:
            self._writer.close()
