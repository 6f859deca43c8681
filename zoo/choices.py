"""The fixed choices of the CLI's options as enums, made from the library's own tuples of valid values, so that typer
lists them in `--help`, refuses anything else before any work and completes them in the shell; and `parse_seeds`
for NVIDIA-style seed lists. A new command takes `Method`, `Precision`, ... as its option's type.

Names that plugins extend (metrics, domains) are no enum: their options complete from the plugins' registrations
(`complete_metric`) and the library checks them.

The members are `StrEnum`s: each is its own value as a `str`, so it goes unchanged into the library, JSON and TOML.
"""

from __future__ import annotations

from enum import StrEnum

from .devices import PRECISIONS
from .errors import ZooError
from .inversion import PERCEPTUAL_CHOICES, PIXEL_LOSSES, TRANSLATION_METHODS
from .sampling import NOISE_MODES
from .translation import SWAP_MODES


def choice(name: str, values: tuple[str, ...]) -> type[StrEnum]:
    return StrEnum(name, [(value, value) for value in values])


Method = choice("Method", TRANSLATION_METHODS)
Precision = choice("Precision", PRECISIONS)
Perceptual = choice("Perceptual", PERCEPTUAL_CHOICES)
PixelLoss = choice("PixelLoss", PIXEL_LOSSES)
Noise = choice("Noise", NOISE_MODES)
SwapMode = choice("SwapMode", SWAP_MODES)
LogSink = choice("LogSink", ("tensorboard",))  # besides metrics.jsonl, which every run writes


def complete_metric(incomplete: str) -> list[str]:
    """Shell completion of --metric: the metrics the loaded plugins register."""
    from .plugins import registered_metrics

    return [name for name in sorted(registered_metrics()) if name.startswith(incomplete)]


MAX_SEEDS = 4096


def parse_seeds(text: str) -> list[int]:
    """NVIDIA's seed lists: '0-7,12' -> [0, 1, ..., 7, 12] (ranges inclusive, order kept, a repeat refused)."""
    seeds: list[int] = []
    for item in text.split(","):
        low, dash, high = item.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()) or (dash and int(high) < int(low)):
            raise ZooError(f"--seeds {text!r}: give seeds and inclusive ranges separated by commas, e.g. 0-7,12")
        seeds += range(int(low), int(high if dash else low) + 1)
        if len(seeds) > MAX_SEEDS:
            raise ZooError(f"--seeds {text!r}: more than {MAX_SEEDS} seeds; split the work")
    if len(set(seeds)) != len(seeds):
        raise ZooError(f"--seeds {text!r}: a seed is given twice; each seed writes one file")
    return seeds
