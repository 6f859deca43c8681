"""Inference speed of zoo's synthesis layers against the straightforward grouped-convolution formulation, in one run.

    python benchmarks/bench_modconv.py [--batch 4] [--repeats 7]

Builds rosinality's standard 256 px config-f generator (style_dim 512, 8 mapping layers, channel multiplier 2,
30M parameters) and a small 32 px one, checks that both formulations give the same images (within 1e-4), then times
a batch through each, alternating between them so that machine load affects both alike. The baseline is described in
benchmarks/baseline.py. Peak memory is the high-water mark of resident memory (VmHWM) of a fresh process that builds
the model and runs only that formulation.
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
from zoo.model import Generator, ModelConfig  # noqa: E402

ALLOCATOR = "tuned" if tune_cpu_allocator() else "system"  # as the zoo command runs
CONFIGS = {
    "256 px config-f": ModelConfig.standard(256),
    "32 px small": ModelConfig(size=32, style_dim=128, n_mlp=4, channels={4: 128, 8: 128, 16: 128, 32: 64}),
}


def build(config: ModelConfig, batch: int):
    torch.manual_seed(0)
    generator = Generator(config).eval()
    z = torch.randn(batch, config.style_dim, generator=torch.Generator().manual_seed(1))
    return generator, z


@torch.no_grad()
def render(generator: Generator, z: torch.Tensor, grouped: bool) -> torch.Tensor:
    with straightforward_formulation() if grouped else contextlib.nullcontext():
        return generator(z, noise="const")[0]


def seconds(generator, z, grouped: bool) -> float:
    start = time.perf_counter()
    render(generator, z, grouped)
    return time.perf_counter() - start


def peak_memory_mb(config_name: str, batch: int, grouped: bool) -> float:
    """Peak RSS (MB) of a fresh process that builds the model and renders one batch twice with one formulation."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_child_peak, (config_name, batch, grouped))


def _child_peak(config_name: str, batch: int, grouped: bool) -> float:
    generator, z = build(CONFIGS[config_name], batch)
    for _ in range(2):
        render(generator, z, grouped)
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def measure(name: str, batch: int, repeats: int) -> dict:
    generator, z = build(CONFIGS[name], batch)
    fast, grouped = render(generator, z, False), render(generator, z, True)
    max_difference = (fast - grouped).abs().max().item()
    timings = {False: [], True: []}
    for _ in range(repeats):
        for formulation in (False, True):
            timings[formulation].append(seconds(generator, z, formulation))
    zoo_ms, grouped_ms = (statistics.median(timings[f]) * 1000 for f in (False, True))
    return {
        "config": name,
        "parameters": sum(p.numel() for p in generator.parameters()),
        "zoo_ms": zoo_ms,
        "grouped_ms": grouped_ms,
        "speedup": grouped_ms / zoo_ms,
        "max_difference": max_difference,
        "zoo_peak_mb": peak_memory_mb(name, batch, False),
        "grouped_peak_mb": peak_memory_mb(name, batch, True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {ALLOCATOR} allocator, batch {args.batch}, median of {args.repeats}")
    print("| config | G params | zoo ms/batch | straightforward ms/batch | speed-up | max abs diff | zoo peak MB | straightforward peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name in CONFIGS:
        row = measure(name, args.batch, args.repeats)
        print(
            f"| {row['config']} | {row['parameters'] / 1e6:.1f}M | {row['zoo_ms']:.0f} | {row['grouped_ms']:.0f} | "
            f"{row['speedup']:.2f}x | {row['max_difference']:.1e} | {row['zoo_peak_mb']:.0f} | {row['grouped_peak_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
