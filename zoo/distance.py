"""Model distance, the paper's Eq. 1: the mean perceptual distance between two models' images of the same z.

`distance_matrix` compares N models in N generator passes per batch: the batch of z goes through each model once,
each image's metric features are computed once, and every pair's distance comes from the cached features. Models of
different families (different mapping networks) are still compared, and their pairs are marked: their images of one
z share no W space, so the distance says how far apart the models are, not how well one translates into the other.
`variant_distances` measures the paper's transformation variants of one domain against its base (Table I).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from .errors import ZooError, check_in_range
from .files import atomic_write_bytes, sha256_file
from .images import MAX_BATCH, check_free, save_image
from .metrics import Metric, get_metric
from .model import Generator
from .registry import Registry, load
from .sampling import check_truncation, sample_latents

MAX_SAMPLES = 100_000  # shared z per model: 50 times the paper's 2000, and (100000, style_dim) z fit any machine
from .swap import level_resolutions, weight_swap

DEFAULT_METRIC = "lpips-alex"  # the paper's
OUTPUT_SUFFIXES = (".csv", ".json", ".png")


@dataclass
class NamedGenerator:
    """A generator to compare, with what the results record about it."""

    name: str
    generator: Generator
    family: str
    mapping_sha256: str
    sha256: str | None = None  # of its checkpoint file; None for a model built in memory (a layer-swapped variant)
    lineage: dict = field(default_factory=dict)


@dataclass
class DistanceMatrix:
    """Mean distances between every pair of models over `samples` shared z (seeded), labelled with their metric."""

    names: list[str]
    matrix: torch.Tensor  # (N, N) float64, symmetric, zero diagonal
    metric: str
    label: str
    samples: int
    seed: int
    truncation: float
    families: list[str]
    sha256: list[str | None]
    mapping_sha256: list[str]

    @cached_property
    def cross_family(self) -> torch.Tensor:
        """(N, N) bool: the two models' mapping networks differ."""
        return torch.tensor([[a != b for b in self.mapping_sha256] for a in self.mapping_sha256])

    def cross_family_pairs(self) -> list[tuple[str, str]]:
        pairs = itertools.combinations(zip(self.names, self.mapping_sha256), 2)
        return [(name_a, name_b) for (name_a, mapping_a), (name_b, mapping_b) in pairs if mapping_a != mapping_b]

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "label": self.label,
            "samples": self.samples,
            "seed": self.seed,
            "truncation": self.truncation,
            "models": [
                {"name": name, "family": family, "sha256": sha256, "mapping_sha256": mapping}
                for name, family, sha256, mapping in zip(self.names, self.families, self.sha256, self.mapping_sha256)
            ],
            "matrix": self.matrix.tolist(),
            "cross_family_pairs": [list(pair) for pair in self.cross_family_pairs()],
        }


# ---------------------------------------------------------------------------------------------------------------------
# Choosing and loading models


def choose_models(domains: Sequence[str] | None = None, family: str | None = None) -> list[str]:
    """The models to compare: `domains` as given, else every installed model of `family`, else every installed model."""
    if domains and family:
        raise ZooError("give --domains or --family, not both")
    if domains:
        return list(dict.fromkeys(domains))
    installed = Registry().domains()
    return sorted(name for name, entry in installed.items() if family is None or entry.family == family)


def load_named(name_or_path: str | Path, device: torch.device | str = "cpu") -> NamedGenerator:
    """An installed model by name (sha256 checked against the registry) or a checkpoint file by path."""
    model = load(name_or_path, device=device)
    return NamedGenerator(
        name=str(name_or_path) if model.sha256 else model.info.domain,
        generator=model.generator,
        family=model.info.family,
        mapping_sha256=model.info.mapping_sha256,
        sha256=model.sha256 or sha256_file(model.info.path),
        lineage=model.info.lineage,
    )


def check_comparable(models: Sequence[NamedGenerator]) -> None:
    """Two or more models whose images of one z can be compared: the same z width and the same resolution."""
    if len(models) < 2:
        found = ", ".join(model.name for model in models) or "none"
        raise ZooError(f"a distance matrix needs at least two models (got {found}); install more or name them with --domains")
    shapes = {(model.generator.config.size, model.generator.config.style_dim) for model in models}
    if len(shapes) > 1:
        listing = ", ".join(f"{m.name} {m.generator.config.size}px z{m.generator.config.style_dim}" for m in models)
        raise ZooError(f"models of different resolutions or z sizes cannot share samples ({listing}); "
                       "choose models of one size with --domains or --family")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# The matrix


@torch.no_grad()
def distance_matrix(
    models: Sequence[NamedGenerator],
    *,
    metric: Metric | str = DEFAULT_METRIC,
    samples: int = 2000,
    seed: int = 0,
    batch: int = 16,
    truncation: float = 1.0,
    on_batch: Callable[[int], None] | None = None,
) -> DistanceMatrix:
    """Mean metric distance between every pair of models' images of the same `samples` z (stored const noise).

    `on_batch(k)` is called after each batch of k samples.
    """
    check_comparable(models)
    check_in_range("--samples", samples, 1, MAX_SAMPLES)
    check_in_range("--batch", batch, 1, MAX_BATCH)
    check_truncation(truncation)
    device = models[0].generator.input.input.device
    metric = get_metric(metric, device) if isinstance(metric, str) else metric
    totals = torch.zeros(len(models), len(models), dtype=torch.float64)
    for z in sample_latents(models[0].generator, samples, seed).split(batch):
        features = [metric.features(render(model.generator, z, truncation)) for model in models]
        totals += pairwise_sums(metric, features)
        if on_batch:
            on_batch(len(z))
    return DistanceMatrix(
        names=[model.name for model in models],
        matrix=totals / samples,
        metric=metric.name,
        label=metric.label,
        samples=samples,
        seed=seed,
        truncation=truncation,
        families=[model.family for model in models],
        sha256=[model.sha256 for model in models],
        mapping_sha256=[model.mapping_sha256 for model in models],
    )


def render(generator: Generator, z: torch.Tensor, truncation: float) -> torch.Tensor:
    """The images as saved: metrics compare pixels in [-1, 1], and a generator may overshoot them."""
    return generator(z.to(generator.input.input.device), truncation=truncation, noise="const")[0].clamp(-1, 1)


def pairwise_sums(metric: Metric, features: list) -> torch.Tensor:
    """(N, N) float64: each pair's distances summed over the batch, from the cached features."""
    sums = torch.zeros(len(features), len(features), dtype=torch.float64)
    for i, j in itertools.combinations(range(len(features)), 2):
        sums[i, j] = sums[j, i] = metric.distance_between(features[i], features[j]).double().sum().item()
    return sums


# ---------------------------------------------------------------------------------------------------------------------
# Variants of one domain (the paper's Table I)


def variant_distances(
    domain: str,
    *,
    ft: str | None = None,
    levels: Sequence[int] | None = None,
    metric: Metric | str = DEFAULT_METRIC,
    samples: int = 2000,
    seed: int = 0,
    batch: int = 16,
    truncation: float = 1.0,
    device: torch.device | str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> DistanceMatrix:
    """The distance matrix of `variant_models`; its first row holds each variant's distance to the base."""
    models = variant_models(domain, ft=ft, levels=levels, device=device)
    return distance_matrix(models, metric=metric, samples=samples, seed=seed, batch=batch, truncation=truncation, on_batch=on_batch)


def variant_models(
    domain: str, *, ft: str | None = None, levels: Sequence[int] | None = None, device: torch.device | str = "cpu"
) -> list[NamedGenerator]:
    """The base, FT (`ft`, fine-tuned without FreezeFC), FC-FT (`domain`) and FC-FT-LS for each swap level.

    FC-FT-LS l is `domain` with the base's layers up to 2^(l+2) px, built in memory with the weight swap.
    """
    tuned = load_named(domain, device)
    base_name = tuned.lineage.get("base")
    if base_name is None:
        raise ZooError(f"{domain!r} records no base model in its lineage; --variants needs a model made with `zoo add-domain`")
    base = load_named(base_name, device)
    if tuned.mapping_sha256 != base.mapping_sha256:
        raise ZooError(f"{domain!r} has another mapping network than its base {base_name!r}, so it is no FC-FT model; "
                       f"give the FreezeFC fine-tune as --variants and this one as --ft")  # fmt: skip
    variants = [replace(base, name=f"base ({base_name})")]
    if ft is not None:
        variants.append(replace(load_ft(ft, base_name, device), name=f"FT ({ft})"))
    variants.append(replace(tuned, name=f"FC-FT ({domain})"))
    for level in swap_levels(tuned.generator.config.size, levels):
        resolutions = level_resolutions(level)
        swapped = weight_swap(base.generator, tuned.generator, resolutions)
        label = f"FC-FT-LS l={level} ({base_name}'s layers up to {max(resolutions)}px)"
        variants.append(replace(tuned, name=label, generator=swapped, sha256=None, lineage={}))
    return variants


def load_ft(ft: str, base_name: str, device: torch.device | str) -> NamedGenerator:
    model = load_named(ft, device)
    recorded_base = model.lineage.get("base")
    if recorded_base not in (None, base_name):
        raise ZooError(f"--ft {ft}: fine-tuned from {recorded_base!r}, not from {base_name!r}; give an FT model of the same base")
    return model


def swap_levels(size: int, levels: Sequence[int] | None = None) -> list[int]:
    """The paper's l that leave some layers fine-tuned (every l whose top resolution is below `size`), or `levels`."""
    log_size = size.bit_length() - 1
    available = list(range(1, log_size - 2))
    if levels is None:
        return available
    unknown = sorted(set(levels) - set(available))
    if unknown:
        raise ZooError(f"swap level(s) {unknown}: a {size}px model has levels {available}")
    return sorted(set(levels))


# ---------------------------------------------------------------------------------------------------------------------
# Files: CSV, JSON and a heatmap PNG


def output_paths(prefix: str | Path, *, force: bool = False) -> list[Path]:
    """PREFIX.csv, PREFIX.json, PREFIX.png; a ZooError if one exists and `force` is off, or cannot be written there."""
    paths = [Path(f"{prefix}{suffix}") for suffix in OUTPUT_SUFFIXES]
    check_free(paths, force)
    return paths


def save_distance_matrix(result: DistanceMatrix, prefix: str | Path, *, force: bool = False) -> list[Path]:
    """Write PREFIX.csv, PREFIX.json and PREFIX.png atomically (none of them if any exists and `force` is off)."""
    csv_path, json_path, png_path = output_paths(prefix, force=force)
    atomic_write_bytes(csv_path, to_csv(result).encode("utf-8"))
    atomic_write_bytes(json_path, (json.dumps(result.to_dict(), indent=2) + "\n").encode("utf-8"))
    save_image(heatmap(result), png_path, force=True, provenance=heatmap_provenance(result))
    return [csv_path, json_path, png_path]


def heatmap_provenance(result: DistanceMatrix) -> dict:
    models = [{"name": name, "family": family, "sha256": sha256}
              for name, family, sha256 in zip(result.names, result.families, result.sha256)]  # fmt: skip
    return {"command": "distance-matrix", "models": models, "metric": result.metric, "samples": result.samples,
            "seed": result.seed, "truncation": result.truncation}  # fmt: skip


def to_csv(result: DistanceMatrix) -> str:
    """The matrix with model names on both axes; the corner cell names the metric."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([result.label, *result.names])
    for name, row in zip(result.names, result.matrix.tolist()):
        writer.writerow([name, *row])
    return buffer.getvalue()


FONT_SIZE = 13
LINE = 18  # height of a line of text
CELL = 64
GAP = 8
MARGIN = 12
BAR_WIDTH = 16
MARKER_COLOUR = (220, 20, 60)  # crimson, distinct from every colour of the scale
VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
PLAIN_SPELLING = str.maketrans({"σ": "sigma", "²": "^2"})  # Pillow's default font has no glyph for these


def heatmap(result: DistanceMatrix) -> Image.Image:
    """Cells coloured by distance with their values, names on both axes, a colour scale, cross-family cells marked."""
    font = ImageFont.load_default(size=FONT_SIZE)
    label_space = round(max(font.getlength(name) for name in result.names)) + GAP
    grid_size = len(result.names) * CELL
    scale_max = float(result.matrix.max()) or 1.0
    title = f"model distance: {result.label}".translate(PLAIN_SPELLING)
    subtitle = f"mean over {result.samples} shared z, seed {result.seed}, truncation {result.truncation:g}"
    left, top = MARGIN + label_space, MARGIN + 2 * LINE + GAP + label_space
    bar_left = left + grid_size + 2 * GAP
    width = max(bar_left + BAR_WIDTH + GAP + round(font.getlength(f"{scale_max:.3f}")),
                MARGIN + round(max(font.getlength(title), font.getlength(subtitle)))) + MARGIN  # fmt: skip
    canvas = Image.new("RGB", (width, top + grid_size + GAP + LINE + MARGIN), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((MARGIN, MARGIN), title, fill="black", font=font)
    draw.text((MARGIN, MARGIN + LINE), subtitle, fill="black", font=font)
    draw_axis_labels(canvas, result.names, font, left, top)
    draw_cells(draw, result, font, left, top, scale_max)
    draw_colour_bar(draw, font, bar_left, top, grid_size, scale_max)
    if result.cross_family.any():
        draw_marker(draw, left + LINE, top + grid_size + GAP, LINE)
        draw.text((left + LINE + GAP, top + grid_size + GAP), "cross-family pair (mapping networks differ)", fill="black", font=font)
    return canvas


def scale_colour(fraction: float) -> tuple[int, int, int]:
    """Viridis, linearly interpolated between five anchors: 0 dark purple, 1 yellow."""
    position = min(max(fraction, 0.0), 1.0) * (len(VIRIDIS) - 1)
    low = min(int(position), len(VIRIDIS) - 2)
    weight = position - low
    return tuple(round(a + (b - a) * weight) for a, b in zip(VIRIDIS[low], VIRIDIS[low + 1]))


def draw_axis_labels(canvas: Image.Image, names: list[str], font, left: int, top: int) -> None:
    draw = ImageDraw.Draw(canvas)
    for index, name in enumerate(names):
        middle = index * CELL + CELL // 2
        draw.text((left - GAP - font.getlength(name), top + middle - LINE // 2), name, fill="black", font=font)
        vertical = vertical_text(name, font)
        canvas.paste((0, 0, 0), (left + middle - LINE // 2, top - GAP - vertical.height), vertical)


def vertical_text(text: str, font) -> Image.Image:
    """A mask of `text` reading bottom to top."""
    mask = Image.new("L", (round(font.getlength(text)) + 1, LINE), 0)
    ImageDraw.Draw(mask).text((0, 0), text, fill=255, font=font)
    return mask.rotate(90, expand=True)


def draw_cells(draw: ImageDraw.ImageDraw, result: DistanceMatrix, font, left: int, top: int, scale_max: float) -> None:
    for row, values in enumerate(result.matrix.tolist()):
        for column, value in enumerate(values):
            x, y = left + column * CELL, top + row * CELL
            colour = scale_colour(value / scale_max)
            draw.rectangle([x, y, x + CELL - 1, y + CELL - 1], fill=colour)
            text = f"{value:.3f}"
            ink = "black" if sum(colour) > 380 else "white"
            draw.text((x + (CELL - font.getlength(text)) / 2, y + (CELL - LINE) / 2), text, fill=ink, font=font)
            if result.cross_family[row, column]:
                draw_marker(draw, x + CELL - 1, y, CELL // 4)


def draw_marker(draw: ImageDraw.ImageDraw, right: int, top: int, size: int) -> None:
    """A triangle in a cell's top right corner."""
    draw.polygon([(right - size, top), (right, top), (right, top + size)], fill=MARKER_COLOUR)


def draw_colour_bar(draw: ImageDraw.ImageDraw, font, left: int, top: int, height: int, scale_max: float) -> None:
    for offset in range(height):
        draw.line([(left, top + offset), (left + BAR_WIDTH - 1, top + offset)], fill=scale_colour(1 - offset / (height - 1)))
    for fraction in (0.0, 0.5, 1.0):
        y = top + round((1 - fraction) * (height - 1))
        draw.line([(left + BAR_WIDTH, y), (left + BAR_WIDTH + 3, y)], fill="black")
        draw.text((left + BAR_WIDTH + GAP, y - LINE // 2), f"{fraction * scale_max:.3f}", fill="black", font=font)
