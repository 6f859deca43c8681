"""Timing shared by the benchmarks: repeats alternating between zoo and its baseline, each figure as its median with
its range over the repeats, and ratios taken repeat by repeat (so a drift in machine speed cancels within a pair)."""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Spread:
    """One figure over independent repeats: quote the median, with min-max showing how noisy the machine was."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def scaled(self, factor: float) -> Spread:
        return Spread(tuple(value * factor for value in self.values))

    def inverse(self) -> Spread:
        return Spread(tuple(1 / value for value in self.values))

    def format(self, spec: str = ".2f", suffix: str = "") -> str:
        low, high = min(self.values), max(self.values)
        return f"{self.median:{spec}}{suffix} ({low:{spec}}-{high:{spec}})"


def timed(run: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def alternating(runs: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, Spread], dict[str, object]]:
    """Seconds of each run over `repeats` rounds, the runs taking turns within a round; and each run's last result."""
    seconds, results = {name: [] for name in runs}, {}
    for _ in range(repeats):
        for name, run in runs.items():
            elapsed, results[name] = timed(run)
            seconds[name].append(elapsed)
    return {name: Spread(tuple(values)) for name, values in seconds.items()}, results


def ratio(numerator: Spread, denominator: Spread) -> Spread:
    """numerator / denominator repeat by repeat (both measured in the same rounds)."""
    return Spread(tuple(a / b for a, b in zip(numerator.values, denominator.values, strict=True)))


def add_repeats(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument("--repeats", type=int, default=default,
                        help=f"Independent repeats, alternating zoo and baseline (default {default}).")  # fmt: skip


def describe_run(repeats: int, *details: str) -> str:
    """The first line of every benchmark's output: what the figures are and the settings they depend on."""
    settings = [f"torch {torch.__version__}", f"cpu capability {torch.backends.cpu.get_cpu_capability()}",
                f"{torch.get_num_threads()} threads", *details]  # fmt: skip
    return f"{', '.join(settings)}; each figure: median (min-max) of {repeats} repeats"
