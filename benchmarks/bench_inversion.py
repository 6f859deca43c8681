"""Batched inversion against one run per image, at the emoji family's config, in one run.

    python benchmarks/bench_inversion.py [--images 16] [--steps 100] [--method bounded] [--precision auto] [--repeats 5]

Builds a generator of the emoji family's architecture (random weights: speed does not depend on them), makes
`--images` target images with it, and inverts them two ways with the same settings: all in one batch (each image has
its own latent and loss; zoo.inversion explains why that is the same optimisation), and one `invert` call per image.
The two take turns over the repeats; each figure is the median (min-max), the ratio taken repeat by repeat.
The issue's bar: the batch takes at most 25% of the time of the single runs. Like the `zoo` command, the benchmark
tunes the CPU allocator (zoo.devices.tune_cpu_allocator); ZOO_CPU_ALLOCATOR=system measures with glibc's defaults.
`--precision` is the inversion's (default auto: bfloat16 on CPUs with AVX512-BF16 or AMX, else float32).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch
from zoo_plugins.emoji import BASE_ARCHITECTURE, RESOLUTION

from zoo.checkpoint import load_model, save_model
from zoo.devices import PRECISIONS, compute_dtype, dtype_name, tune_cpu_allocator
from zoo.inversion import InversionSettings, invert, sefa_space
from zoo.model import Generator, ModelConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import add_repeats, alternating, describe_run, ratio  # noqa: E402

EMOJI = ModelConfig(size=RESOLUTION, **BASE_ARCHITECTURE)  # the embedded emoji family's architecture
ALLOCATOR = "tuned" if tune_cpu_allocator() else "system"  # as the zoo command runs


def emoji_sized_model(folder: Path):
    torch.manual_seed(0)
    path = folder / "bench.safetensors"
    save_model(path, Generator(EMOJI).eval(), domain="bench", family="bench", lineage={})
    return load_model(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--method", default="bounded", choices=("bounded", "projection"))
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    add_repeats(parser, 5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["ZOO_HOME"] = home
        model = emoji_sized_model(Path(home))
        sefa_space(model)  # computed once and cached, as in real use; not part of either timing
        with torch.no_grad():
            z = torch.randn(args.images, EMOJI.style_dim, generator=torch.Generator().manual_seed(1))
            targets, _ = model.generator([z], truncation=0.7)
        runs = {
            "batch": lambda settings: invert(model, targets, settings),
            "singles": lambda settings: [invert(model, targets[i : i + 1], settings) for i in range(args.images)],
        }
        warm_up = InversionSettings(method=args.method, steps=3, perceptual="ssim", precision=args.precision)
        for run in runs.values():  # the first call of each shape pays for allocations and oneDNN kernel choice
            run(warm_up)
        settings = InversionSettings(method=args.method, steps=args.steps, perceptual="ssim", precision=args.precision)
        seconds, _ = alternating({name: lambda run=run: run(settings) for name, run in runs.items()}, args.repeats)
    precision = dtype_name(compute_dtype(args.precision, torch.device("cpu")))
    print(describe_run(args.repeats, f"emoji {RESOLUTION} px config", f"{args.method} inversion", f"{args.steps} steps",
                       "L1 + SSIM loss", f"{precision} synthesis", f"{ALLOCATOR} allocator"))  # fmt: skip
    print("| images | one batch s | one run per image s | batch / singles |")
    print("|---|---|---|---|")
    share = ratio(seconds["batch"], seconds["singles"]).scaled(100)
    print(f"| {args.images} | {seconds['batch'].format()} | {seconds['singles'].format()} | {share.format('.1f', '%')} |")


if __name__ == "__main__":
    main()
