"""Training-step speed: zoo's synthesis layers against the straightforward formulation, and bfloat16 training
against float32, in one run.

    python benchmarks/bench_training.py [--steps 16] [--repeats 3] [--setups NAME ...]

Times full training iterations (D step, G step, and the lazy R1 / path-length steps when their turn comes, ADA at
p = 0.2) at a small 32 px config with batch 16 and at the 256 px config-f with batch 4, alternating between the two
formulations (benchmarks/baseline.py describes the baseline). After one warm-up step each (step 0, which runs both
regularisers), a repeat is a window of --steps steps of each formulation in turn; a figure is the median (min-max) over
the repeats of the window's mean. The regularisers come at their usual rates only when --steps is a multiple of 16
(R1 every 16 steps, path length every 4); with fewer steps the windows hold mostly plain steps.
Peak memory is the high-water mark of resident memory (VmHWM) of a fresh process that builds the models and trains one
step (step 0, with both regularisers) with only that formulation.
The precision table times zoo's own steps at the 64 px emoji config (batch 16) with `--precision float32` against
`bfloat16` (the convolutions of G's synthesis and D's blocks in bfloat16), alternating likewise; bfloat16 is only
faster where the CPU computes it natively (AVX512-BF16 or AMX).
Like the `zoo` command, it tunes the CPU allocator (zoo.devices); ZOO_CPU_ALLOCATOR=system measures glibc's defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import straightforward_formulation  # noqa: E402
from timing import Spread, add_repeats, alternating, describe_run, ratio  # noqa: E402

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


def steps_run(trainer: Trainer, real: torch.Tensor, straightforward: bool, steps: int):
    def run() -> None:
        with formulation(straightforward):
            for _ in range(steps):
                trainer.train_step(real)

    return run


def peak_memory_mb(name: str, straightforward: bool) -> float:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_child_peak, (name, straightforward))


def _child_peak(name: str, straightforward: bool) -> float:
    trainer, real = make_trainer(name)
    steps_run(trainer, real, straightforward, 1)()
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def seconds_per_step(trainers: dict, steps: int, repeats: int) -> dict[str, Spread]:
    """Each (trainer, real, straightforward)'s seconds per step over `repeats` windows of `steps` steps, the variants
    taking turns after one warm-up step each. One trainer per variant, so all follow the same regulariser schedule."""
    for trainer, real, straightforward in trainers.values():
        steps_run(trainer, real, straightforward, 1)()
    runs = {key: steps_run(*variant, steps) for key, variant in trainers.items()}
    seconds, _ = alternating(runs, repeats)
    return {key: spread.scaled(1 / steps) for key, spread in seconds.items()}


def measure(name: str, steps: int, repeats: int) -> dict:
    seconds = seconds_per_step({f: (*make_trainer(name), f) for f in (False, True)}, steps, repeats)
    return {"setup": name, "zoo_its": seconds[False].inverse(), "baseline_its": seconds[True].inverse(),
            "speedup": ratio(seconds[True], seconds[False]),
            "zoo_mb": peak_memory_mb(name, False), "baseline_mb": peak_memory_mb(name, True)}  # fmt: skip


def measure_precision(steps: int, repeats: int) -> dict:
    trainers = {p: (*make_trainer(PRECISION_SETUP, p), False) for p in ("float32", "bfloat16")}
    seconds = seconds_per_step(trainers, steps, repeats)
    return {"float32_its": seconds["float32"].inverse(), "bfloat16_its": seconds["bfloat16"].inverse(),
            "speedup": ratio(seconds["float32"], seconds["bfloat16"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16, help="Steps per repeat of each variant (default 16: one R1 cycle).")
    add_repeats(parser, 3)
    parser.add_argument("--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS), metavar="SETUP",
                        help=f"Which setups to time (default all: {', '.join(SETUPS)}; the last is the precision table).")
    args = parser.parse_args()
    print(describe_run(args.repeats, f"{ALLOCATOR} allocator", f"windows of {args.steps} steps after one warm-up step"))
    print("| setup | zoo it/s | straightforward it/s | speed-up | zoo peak MB | straightforward peak MB |")
    print("|---|---|---|---|---|---|")
    for name in args.setups:
        if name != PRECISION_SETUP:
            row = measure(name, args.steps, args.repeats)
            print(f"| {row['setup']} | {row['zoo_its'].format()} | {row['baseline_its'].format()} | "
                  f"{row['speedup'].format('.2f', 'x')} | {row['zoo_mb']:.0f} | {row['baseline_mb']:.0f} |")
    if PRECISION_SETUP in args.setups:
        row = measure_precision(args.steps, args.repeats)
        print(f"\n{PRECISION_SETUP} (native bfloat16: {native_bfloat16(torch.device('cpu'))})\n")
        print("| float32 it/s | bfloat16 it/s | speed-up |\n|---|---|---|")
        print(f"| {row['float32_its'].format()} | {row['bfloat16_its'].format()} | {row['speedup'].format('.2f', 'x')} |")


if __name__ == "__main__":
    main()
