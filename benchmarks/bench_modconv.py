"""Inference speed of zoo's synthesis layers against the straightforward grouped-convolution formulation, in one run.

    python benchmarks/bench_modconv.py [--batch 4] [--repeats 7] [--rosinality CHECKOUT]

Builds rosinality's standard 256 px config-f generator (style_dim 512, 8 mapping layers, channel multiplier 2,
30M parameters) and a small 32 px one, checks that both formulations give the same images (within 1e-4), then times
a batch through each, alternating between them so that machine load affects both alike. The baseline is described in
benchmarks/baseline.py. With --rosinality, rosinality's own model.py (from that checkout, benchmarks/rosinality_model.py)
takes turns too, at the 256 px config (the only one of the two it can build). Each figure is the median (min-max)
of the repeats; a speed-up is taken repeat by repeat. Peak memory is the high-water mark of resident memory (VmHWM) of
a fresh process that builds the model and runs only that formulation.
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
import rosinality_model  # noqa: E402
from baseline import straightforward_formulation  # noqa: E402
from timing import add_repeats, alternating, describe_run, ratio  # noqa: E402

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


def formulations(name: str, batch: int, rosinality: Path | None) -> tuple[Generator, dict]:
    """zoo's generator and the renders to time: zoo, the straightforward formulation, and rosinality's own if asked."""
    generator, z = build(CONFIGS[name], batch)
    renders = {"zoo": lambda: render(generator, z, False), "straightforward": lambda: render(generator, z, True)}
    if rosinality is not None and CONFIGS[name] == ModelConfig.standard(CONFIGS[name].size):
        original = rosinality_model.rosinality_generator(rosinality, generator, CONFIGS[name])
        renders["rosinality model.py"] = lambda: rosinality_model.render(original, z)
    return generator, renders


def measure(name: str, batch: int, repeats: int, rosinality: Path | None) -> dict:
    generator, renders = formulations(name, batch, rosinality)
    images = {way: render_once() for way, render_once in renders.items()}  # also the warm-up
    seconds, _ = alternating(renders, repeats)
    return {
        "config": name,
        "parameters": sum(p.numel() for p in generator.parameters()),
        "ms": {way: spread.scaled(1000) for way, spread in seconds.items()},
        "speedup": {way: ratio(spread, seconds["zoo"]) for way, spread in seconds.items() if way != "zoo"},
        "max_difference": {way: (image - images["zoo"]).abs().max().item() for way, image in images.items() if way != "zoo"},
        "zoo_peak_mb": peak_memory_mb(name, batch, False),
        "grouped_peak_mb": peak_memory_mb(name, batch, True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    add_repeats(parser, 7)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), metavar="CONFIG",
                        help=f"Which configs to time (default all: {', '.join(CONFIGS)}).")  # fmt: skip
    parser.add_argument("--rosinality", type=Path, help="A checkout of rosinality/stylegan2-pytorch to time its model.py too.")
    args = parser.parse_args()
    print(describe_run(args.repeats, f"{ALLOCATOR} allocator", f"batch {args.batch}"))
    print("| config | G params | formulation | ms/batch | speed-up of zoo | max abs diff to zoo |")
    print("|---|---|---|---|---|---|")
    for name in args.configs:
        row = measure(name, args.batch, args.repeats, args.rosinality)
        for way, ms in row["ms"].items():
            speedup = row["speedup"][way].format(".2f", "x") if way in row["speedup"] else ""
            difference = f"{row['max_difference'][way]:.1e}" if way in row["max_difference"] else ""
            print(f"| {row['config']} | {row['parameters'] / 1e6:.1f}M | {way} | {ms.format('.0f')} | {speedup} | {difference} |")
        print(f"| {row['config']} | peak MB (one fresh process each) | zoo {row['zoo_peak_mb']:.0f}, "
              f"straightforward {row['grouped_peak_mb']:.0f} | | | |")  # fmt: skip


if __name__ == "__main__":
    main()
