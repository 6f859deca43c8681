"""Training-step speed: zoo's synthesis layers against the straightforward formulation, and bfloat16 training
against float32, in one run.

    python benchmarks/bench_training.py [--steps 9]

Times full training iterations (D step, G step, and the lazy R1 / path-length steps at their usual rates, ADA at
p = 0.2) at a small 32 px config with batch 16 and at the 256 px config-f with batch 4, alternating between the two
formulations (benchmarks/baseline.py describes the baseline). Peak memory is the high-water mark of resident memory
(VmHWM) of a fresh process that builds the models and trains with only that formulation.
The precision table times zoo's own steps at the 64 px emoji config (batch 16) with `--precision float32` against
`bfloat16` (the convolutions of G's synthesis and D's blocks in bfloat16), alternating likewise; bfloat16 is only
faster where the CPU computes it natively (AVX512-BF16 or AMX).
Like the `zoo` command, it tunes the CPU allocator (zoo.devices); ZOO_CPU_ALLOCATOR=system measures glibc's defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import straightforward_formulation  # noqa: E402

from zoo.devices import native_bfloat16, tune_cpu_allocator  # noqa: E402
from zoo.model import Discriminator, Generator, ModelConfig  # noqa: E402
from zoo.training import TrainConfig, Trainer  # noqa: E402

ALLOCATOR = "tuned" if tune_cpu_allocator() else "system"  # as the zoo command runs
SETUPS = {
    "32 px small, batch 16": (ModelConfig(size=32, style_dim=128, n_mlp=4, channels={4: 128, 8: 128, 16: 128, 32: 64}), 16),
    "256 px config-f, batch 4": (ModelConfig.standard(256), 4),
    "64 px emoji, batch 16": (ModelConfig(size=64, style_dim=128, n_mlp=4, channels={4: 128, 8: 128, 16: 128, 32: 64, 64: 32}), 16),
}
PRECISION_SETUP = "64 px emoji, batch 16"  # timed in float32 against bfloat16, not against the baseline


def make_trainer(name: str, precision: str = "float32") -> tuple[Trainer, torch.Tensor]:
    config, batch = SETUPS[name]
    torch.manual_seed(0)
    trainer = Trainer(TrainConfig(batch=batch, seed=0, precision=precision), Generator(config), Discriminator(config),
                      augment_mode="diffaug", device=torch.device("cpu"))
    trainer.augment.p = 0.2
    real = torch.randint(0, 256, (batch, 3, config.size, config.size), dtype=torch.uint8)
    return trainer, real


def formulation(straightforward: bool):
    return straightforward_formulation() if straightforward else contextlib.nullcontext()


def step_seconds(trainer: Trainer, real: torch.Tensor, straightforward: bool) -> float:
    with formulation(straightforward):
        start = time.perf_counter()
        trainer.train_step(real)
        return time.perf_counter() - start


def peak_memory_mb(name: str, straightforward: bool, steps: int) -> float:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_child_peak, (name, straightforward, steps))


def _child_peak(name: str, straightforward: bool, steps: int) -> float:
    trainer, real = make_trainer(name)
    for _ in range(steps):
        step_seconds(trainer, real, straightforward)
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def alternating_seconds(trainers: dict, steps: int) -> dict:
    """Mean seconds per step of each (trainer, real, straightforward), their steps alternating; the first warms up.

    One trainer per variant, so all go through the same R1 / path-length schedule."""
    timings = {key: [] for key in trainers}
    for _ in range(steps):
        for key, (trainer, real, straightforward) in trainers.items():
            timings[key].append(step_seconds(trainer, real, straightforward))
    return {key: statistics.mean(values[1:]) for key, values in timings.items()}


def measure(name: str, steps: int) -> dict:
    seconds = alternating_seconds({f: (*make_trainer(name), f) for f in (False, True)}, steps)
    zoo_s, baseline_s = seconds[False], seconds[True]
    return {"setup": name, "zoo_its": 1 / zoo_s, "baseline_its": 1 / baseline_s, "speedup": baseline_s / zoo_s,
            "zoo_mb": peak_memory_mb(name, False, 2), "baseline_mb": peak_memory_mb(name, True, 2)}


def measure_precision(steps: int) -> dict:
    seconds = alternating_seconds({p: (*make_trainer(PRECISION_SETUP, p), False) for p in ("float32", "bfloat16")}, steps)
    return {"float32_its": 1 / seconds["float32"], "bfloat16_its": 1 / seconds["bfloat16"],
            "speedup": seconds["float32"] / seconds["bfloat16"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=9, help="Timed iterations per formulation (plus one warm-up).")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {ALLOCATOR} allocator, mean of {args.steps - 1} steps after one warm-up")
    print("| setup | zoo it/s | straightforward it/s | speed-up | zoo peak MB | straightforward peak MB |")
    print("|---|---|---|---|---|---|")
    for name in SETUPS:
        if name != PRECISION_SETUP:
            row = measure(name, args.steps)
            print(f"| {row['setup']} | {row['zoo_its']:.2f} | {row['baseline_its']:.2f} | {row['speedup']:.2f}x | "
                  f"{row['zoo_mb']:.0f} | {row['baseline_mb']:.0f} |")
    row = measure_precision(args.steps)
    print(f"\n{PRECISION_SETUP} (native bfloat16: {native_bfloat16(torch.device('cpu'))})\n")
    print("| float32 it/s | bfloat16 it/s | speed-up |\n|---|---|---|")
    print(f"| {row['float32_its']:.2f} | {row['bfloat16_its']:.2f} | {row['speedup']:.2f}x |")


if __name__ == "__main__":
    main()
