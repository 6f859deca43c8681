"""Training-step speed: zoo's synthesis layers against the straightforward formulation, in one run.

    python benchmarks/bench_training.py [--steps 6]

Times full training iterations (D step, G step, and the lazy R1 / path-length steps at their usual rates, ADA at
p = 0.2) at a small 32 px config with batch 16 and at the 256 px config-f with batch 4, alternating between the two
formulations (benchmarks/baseline.py describes the baseline). Peak memory is the high-water mark of resident memory
(VmHWM) of a fresh process that builds the models and trains with only that formulation.
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

from zoo.devices import tune_cpu_allocator  # noqa: E402
from zoo.model import Discriminator, Generator, ModelConfig  # noqa: E402
from zoo.training import TrainConfig, Trainer  # noqa: E402

ALLOCATOR = "tuned" if tune_cpu_allocator() else "system"  # as the zoo command runs
SETUPS = {
    "32 px small, batch 16": (ModelConfig(size=32, style_dim=128, n_mlp=4, channels={4: 128, 8: 128, 16: 128, 32: 64}), 16),
    "256 px config-f, batch 4": (ModelConfig.standard(256), 4),
}


def make_trainer(name: str) -> tuple[Trainer, torch.Tensor]:
    config, batch = SETUPS[name]
    torch.manual_seed(0)
    trainer = Trainer(TrainConfig(batch=batch, seed=0), Generator(config), Discriminator(config), augment_mode="diffaug",
                      device=torch.device("cpu"))
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


def measure(name: str, steps: int) -> dict:
    # One trainer per formulation, so both go through the same R1 / path-length schedule; their steps alternate.
    trainers = {straightforward: make_trainer(name) for straightforward in (False, True)}
    timings = {False: [], True: []}
    for _ in range(steps):
        for straightforward, (trainer, real) in trainers.items():
            timings[straightforward].append(step_seconds(trainer, real, straightforward))
    zoo_s, baseline_s = (statistics.mean(timings[f][1:]) for f in (False, True))  # the first step warms up
    return {"setup": name, "zoo_its": 1 / zoo_s, "baseline_its": 1 / baseline_s, "speedup": baseline_s / zoo_s,
            "zoo_mb": peak_memory_mb(name, False, 2), "baseline_mb": peak_memory_mb(name, True, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=9, help="Timed iterations per formulation (plus one warm-up).")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {ALLOCATOR} allocator, mean of {args.steps - 1} steps after one warm-up")
    print("| setup | zoo it/s | straightforward it/s | speed-up | zoo peak MB | straightforward peak MB |")
    print("|---|---|---|---|---|---|")
    for name in SETUPS:
        row = measure(name, args.steps)
        print(f"| {row['setup']} | {row['zoo_its']:.2f} | {row['baseline_its']:.2f} | {row['speedup']:.2f}x | "
              f"{row['zoo_mb']:.0f} | {row['baseline_mb']:.0f} |")


if __name__ == "__main__":
    main()
