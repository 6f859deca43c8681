"""Progress display for the command line: a rich progress bar for training runs, and their metrics as one line."""

from __future__ import annotations

import contextlib
from typing import Iterator

from .training.loop import ProgressCallback


@contextlib.contextmanager
def rich_progress(description: str = "training", console=None) -> Iterator[ProgressCallback]:
    """A rich progress bar (steps, it/s, ETA, latest losses and augmentation p) as a ProgressCallback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class StepsPerSecond(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed or 0:.2f} it/s")

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), StepsPerSecond(),
               TimeRemainingColumn(), TextColumn("{task.fields[status]}")]  # fmt: skip
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(description, total=None, status="")
        started = False

        def update(done: int, total: int, metrics: dict | None) -> None:
            nonlocal started
            if not started:  # a resumed run starts part-way: that jump is not speed
                bar.reset(task, total=total, completed=done)
                started = True
            status = {"status": format_metrics(metrics)} if metrics else {}
            bar.update(task, completed=done, total=total, **status)

        yield update


def format_metrics(metrics: dict) -> str:
    labels = {"d_loss": "D", "g_loss": "G", "r1": "R1", "path_length": "PL", "augment_p": "p",  # the GAN's
              "loss": "loss", "latent": "latent", "image": "image", "offset": "offset",  # an encoder's
              "l1": "L1", "ssim": "1-SSIM"}  # a translator's
    return "  ".join(f"{label} {metrics[key]:.3g}" for key, label in labels.items() if key in metrics)
