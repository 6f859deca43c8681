"""Speed of `zoo distance-matrix` against the naive pairwise loop over the same models, in one run.

    python benchmarks/bench_distance.py [--models 6] [--samples 64] [--batch 16] [--repeats 5]

Builds N generators of the emoji family's architecture with random weights (speed does not depend on the
weights) and measures every pair's model distance two ways, alternating between them so that machine load affects
both alike:
- zoo: `zoo.distance.distance_matrix`, each batch of z through each model once, metric features once per image,
  pairwise distances from the cached features (N generator passes per batch);
- naive: for each of the N(N-1)/2 pairs, both models generate the batch and the metric compares the two images
  directly (N(N-1) generator passes per batch, features recomputed for every pair).
Each figure is the median (min-max) of the repeats; the speed-up is taken repeat by repeat.
Both give the same numbers (checked here, and by tests/test_distance.py). Metrics: SSIM, and LPIPS's AlexNet
architecture with RANDOM backbone weights, for timing only: its numbers are not LPIPS.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Callable

import torch
import torchvision
from zoo_plugins.emoji import BASE_ARCHITECTURE, RESOLUTION

from zoo.checkpoint import mapping_sha256
from zoo.distance import NamedGenerator, distance_matrix
from zoo.metrics import LPIPSDistance, Metric, SSIMDistance
from zoo.model import Generator, ModelConfig
from zoo.sampling import sample_latents

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import add_repeats, alternating, describe_run, ratio  # noqa: E402

EMOJI = ModelConfig(size=RESOLUTION, **BASE_ARCHITECTURE)  # the embedded emoji family's architecture
METRICS: dict[str, Callable[[], Metric]] = {
    "ssim": SSIMDistance,
    "lpips-alex architecture, random backbone (timing only)": lambda: LPIPSDistance(
        "alex", torch.device("cpu"), torchvision.models.alexnet(weights=None).state_dict()
    ),
}


@torch.no_grad()
def naive_distance_matrix(
    generators: list[Generator], metric: Metric, *, samples: int, seed: int, batch: int, truncation: float = 1.0
) -> torch.Tensor:
    """Each pair on its own: both models generate every batch, and the metric compares their images directly."""
    totals = torch.zeros(len(generators), len(generators), dtype=torch.float64)
    for i, j in itertools.combinations(range(len(generators)), 2):
        for z in sample_latents(generators[i], samples, seed).split(batch):
            images_i = generators[i](z, truncation=truncation, noise="const")[0].clamp(-1, 1)
            images_j = generators[j](z, truncation=truncation, noise="const")[0].clamp(-1, 1)
            totals[i, j] += metric(images_i, images_j).double().sum().item()
        totals[j, i] = totals[i, j]
    return totals / samples


def build_models(count: int) -> list[NamedGenerator]:
    torch.manual_seed(0)
    generators = [Generator(EMOJI).eval() for _ in range(count)]
    return [NamedGenerator(f"model-{index}", generator, f"family-{index}", mapping_sha256(generator.state_dict()))
            for index, generator in enumerate(generators)]  # fmt: skip


def measure(metric_name: str, models: list[NamedGenerator], samples: int, batch: int, repeats: int) -> dict:
    metric = METRICS[metric_name]()
    runs = {
        "zoo": lambda: distance_matrix(models, metric=metric, samples=samples, batch=batch).matrix,
        "naive": lambda: naive_distance_matrix([m.generator for m in models], metric, samples=samples, seed=0, batch=batch),
    }
    for run in runs.values():  # warm-up: the first call of each shape pays for allocations and kernel choice
        run()
    seconds, matrices = alternating(runs, repeats)
    return {
        "metric": metric_name,
        "zoo_s": seconds["zoo"],
        "naive_s": seconds["naive"],
        "speedup": ratio(seconds["naive"], seconds["zoo"]),
        "max_difference": (matrices["zoo"] - matrices["naive"]).abs().max().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    add_repeats(parser, 5)
    args = parser.parse_args()
    models = build_models(args.models)
    parameters = sum(p.numel() for p in models[0].generator.parameters()) / 1e6
    print(describe_run(args.repeats, f"{args.models} models of {RESOLUTION} px ({parameters:.1f}M parameters each)",
                       f"{args.samples} samples", f"batch {args.batch}"))  # fmt: skip
    print("| metric | zoo s | naive pairwise s | speed-up | max abs diff |")
    print("|---|---|---|---|---|")
    for name in METRICS:
        row = measure(name, models, args.samples, args.batch, args.repeats)
        print(f"| {row['metric']} | {row['zoo_s'].format()} | {row['naive_s'].format()} | {row['speedup'].format('.2f', 'x')} | "
              f"{row['max_difference']:.1e} |")


if __name__ == "__main__":
    main()
