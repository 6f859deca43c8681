"""`zoo demo`: a family of installed domains at work on held-out images, written as a web page with PNGs.

For the embedded emoji family (the default) everything ships with zoo, the six models in checkpoints/ and the images,
so the demo runs offline on a laptop CPU in about a minute. It takes held-out test images of the family's base (images
that every target domain's training filter rejects, so no target model has seen them), inverts them with the base,
and writes:
- their translations into every other domain of the family, beside each image's true counterpart when the target's
  data holds one (the emoji styles draw the same emoji, so they do);
- multi-modal outputs (random appearance codes on the last layers) of one input in every domain;
- reference-guided outputs: one input with the appearance of a held-out image of each target domain;
- the family's model-distance matrix (the paper's Eq. 1) as a heatmap and a table;
and an index.html that shows them together.
"""

from __future__ import annotations

import html
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .distance import MAX_SAMPLES, DistanceMatrix, distance_matrix, load_named, save_distance_matrix
from .domains import DomainSpec
from .errors import ZooError, check_in_range
from .evaluation import held_out_inputs
from .images import load_images, model_provenance, save_image
from .inversion import InversionSettings, StepCallback, invert, invert_in_batches, resolve_perceptual
from .metrics import lpips_if_available
from .plugins import registered_domains
from .registry import Registry, load
from .translation import (  # fmt: skip
    Renderer,
    check_styles,
    resolve_method,
    translate,
    translate_multimodal,
    translate_with_reference,
    translation_options,
)
from .translator import distilled_rows, family_translator, reference_appearance, translator_for


@dataclass
class DemoSettings:
    family: str = "emoji"
    inputs: int = 6
    styles: int = 4
    steps: int = 300
    samples: int = 256  # z samples per model for the distance matrix
    metric: str = "auto"  # lpips-alex when its weights are on this machine, else ssim
    seed: int = 0

    def __post_init__(self):
        check_in_range("--inputs", self.inputs, 1)
        check_styles(self.styles, minimum=1)
        check_in_range("--steps", self.steps, 1)
        check_in_range("--samples", self.samples, 1, MAX_SAMPLES)


@dataclass
class Cast:
    """Who plays in the demo: the family's base, its other domains, and the held-out inputs."""

    base: str
    targets: list[str]
    inputs: list[Path]
    specs: dict[str, DomainSpec] = field(repr=False)


def cast(settings: DemoSettings) -> Cast:
    """The installed members of the family, its base (the member trained from scratch) and held-out inputs."""
    installed = Registry().domains()
    specs = registered_domains()
    members = sorted(name for name, entry in installed.items() if entry.family == settings.family and name in specs)
    bases = [name for name in members if specs[name].recipe.base is None]
    if len(bases) != 1 or len(members) < 2:
        raise ZooError(
            f"the demo needs family '{settings.family}' installed: its base and at least one other domain "
            f"(installed: {', '.join(members) or 'none'}); build it with scripts/build-emoji-zoo.sh or `zoo add-domain`"
        )
    base, targets = bases[0], [name for name in members if name != bases[0]]
    inputs = held_out(specs[base], [specs[name] for name in targets], settings.inputs)
    stems = [path.stem for path in inputs]
    if len(set(stems)) < len(stems):  # the page's images are named by stem
        raise ZooError(f"{specs[base].data.bundled}: held-out images of one name in different folders; rename one of them")
    return Cast(base, targets, inputs, specs)


def held_out(base: DomainSpec, targets: list[DomainSpec], count: int) -> list[Path]:
    """`count` images of the base's bundled data, evenly spread over those that no target domain trains on."""
    candidates = sorted(set.intersection(*(set(held_out_inputs(base.name, target.name)) for target in targets)))
    if not candidates:
        raise ZooError(f"{base.data.bundled}: no held-out image (every one is in some target's training split)")
    return candidates[:: max(1, len(candidates) // count)][:count]


def counterpart(spec: DomainSpec, image: Path) -> Path | None:
    """The same subject drawn in `spec`'s domain: its bundled image of the same file name, if there is one."""
    if spec.data.bundled is None:
        return None
    path = spec.data.bundled / image.name
    return path if path.is_file() else None


def demo_metric(choice: str) -> str:
    """'auto' -> 'lpips-alex' when its backbone weights are on this machine, else 'ssim'."""
    return lpips_if_available("alex") if choice == "auto" else choice


def run_demo(
    out: Path, settings: DemoSettings | None = None, *, force: bool = False, device="cpu", on_step: StepCallback | None = None
) -> Path:
    """Write the demo into `out` (index.html and its PNGs); returns the page's path."""
    settings = settings or DemoSettings()
    out = Path(out)
    if out.exists() and not force:
        raise ZooError(f"{out}: already exists; pass --force to overwrite it or choose another --out")
    players = cast(settings)
    started = time.perf_counter()
    models = {name: load(name, device=device) for name in [players.base, *players.targets]}
    translator = None
    base = models[players.base]
    # The family recipe's method; a family whose translator is not installed (e.g. one being built) shows the paper's.
    if resolve_method(None, players.targets).method == "distilled" and all(translator_for(base, name) for name in players.targets):
        translator = family_translator(base, players.targets)
    if out.exists():  # --force: the previous demo's images go, once the models are known to load
        shutil.rmtree(out / "images", ignore_errors=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    size = models[players.base].info.config.size
    images = load_images(players.inputs, size)
    method = "distilled" if translator is not None else "bounded"
    provenance = {"command": "demo", "models": [model_provenance(model) for model in models.values()], "method": method,
                  "steps": settings.steps if translator is None else None, "seed": settings.seed,
                  "swap": {name: translation_options(name).swap for name in players.targets}}  # fmt: skip
    page = Page(out, players, settings, provenance)
    if translator is not None:
        how = translate_distilled(page, models, images, settings, translator)
    else:
        how = translate_inverted(page, models, images, settings, on_step)
    metric = demo_metric(settings.metric)
    distances = distance_matrix([load_named(name, device) for name in models], metric=metric, samples=settings.samples,
                                seed=settings.seed)  # fmt: skip
    save_distance_matrix(distances, out / "distances", force=True)
    note = (f"{how} "
            f"Distances: {distances.label}, {distances.samples} shared z samples per model. "
            f"Made in {time.perf_counter() - started:.0f} s.")  # fmt: skip
    return page.write(distances, note, size)


def translate_inverted(page: "Page", models: dict, images: torch.Tensor, settings: DemoSettings, on_step) -> str:
    """The paper's way: invert the inputs with the base (bounded), render each target; returns the page's note."""
    players = page.players
    inversion = InversionSettings(method="bounded", steps=settings.steps)
    result = invert_in_batches(models[players.base], images, inversion, seed=settings.seed, on_step=on_step)
    page.add_inputs(images, result.reconstructions.cpu())
    size = images.shape[-1]
    for name in players.targets:
        renderer = Renderer(models[players.base].generator, models[name].generator, translation_options(name, seed=settings.seed))
        page.add_translations(name, translate(renderer, result.latents, result.noise_spec()).cpu(), size)
        first = result.latents[:1]
        page.add_styles(name, translate_multimodal(renderer, first, "const", settings.styles)[0].cpu())
        reference_image = reference_for(players, name, size)
        if reference_image is not None:
            reference = invert(models[name], reference_image[None], inversion, seed=settings.seed).latents
            page.add_reference(name, reference_image, translate_with_reference(renderer, first, "const", reference)[0].cpu())
    return (f"Inversion: bounded (SeFa), {settings.steps} steps, loss L1 + {resolve_perceptual(inversion.perceptual)}, "
            f"{result.precision} synthesis.")  # fmt: skip


def translate_distilled(page: "Page", models: dict, images: torch.Tensor, settings: DemoSettings, translator) -> str:
    """The family recipe's way: one pass of its distilled translator (the reference's appearance from the family
    encoder, when one is installed); returns the page's note."""
    from .encoder import encoder_for
    players, base = page.players, models[page.players.base]
    page.add_inputs(images, None)
    size = images.shape[-1]
    for name in players.targets:
        renderer = Renderer(base.generator, models[name].generator, translation_options(name, seed=settings.seed))
        rows = distilled_rows(translator, images, name, renderer, settings.styles, None)
        page.add_translations(name, rows[:, 0], size)
        page.add_styles(name, rows[0, 1:])
        reference_image = reference_for(players, name, size)
        if reference_image is not None and encoder_for(base) is not None:
            code = reference_appearance(None, base, reference_image[None], translator.config.appearance_layers)
            page.add_reference(name, reference_image, distilled_rows(translator, images[:1], name, renderer, 0, code)[0, -1])
    return "Translation: the family's distilled translator, one forward pass, no inversion (docs/inversion.md)."


def reference_for(players: Cast, target: str, size: int) -> torch.Tensor | None:
    """A held-out image of the target domain, of another subject than the first input, to borrow its appearance."""
    for image in players.inputs[1:]:
        drawn = counterpart(players.specs[target], image)
        if drawn is not None:
            return load_images([drawn], size)[0]
    return None


class Page:
    """index.html and its images, built section by section."""

    def __init__(self, out: Path, players: Cast, settings: DemoSettings, provenance: dict):
        self.out, self.players, self.settings, self.provenance = out, players, settings, provenance
        self.translation_columns: dict[str, list[str]] = {}
        self.style_rows: list[str] = []
        self.reference_rows: list[str] = []

    def image(self, tensor: torch.Tensor, name: str) -> str:
        save_image(tensor, self.out / "images" / f"{name}.png", force=True, provenance={**self.provenance, "image": name})
        return f'<img src="images/{html.escape(name)}.png" alt="{html.escape(name)}">'

    def add_inputs(self, images: torch.Tensor, reconstructions: torch.Tensor | None) -> None:
        self.translation_columns["input"] = [self.image(image, f"input-{path.stem}") for image, path in zip(images, self.players.inputs)]
        if reconstructions is None:  # nothing was inverted
            return
        self.translation_columns[f"{self.players.base} (reconstruction)"] = [
            self.image(image, f"reconstruction-{path.stem}") for image, path in zip(reconstructions, self.players.inputs)
        ]

    def add_translations(self, target: str, outputs: torch.Tensor, size: int) -> None:
        cells = []
        for output, path in zip(outputs, self.players.inputs):
            cell = self.image(output, f"{target}-{path.stem}")
            truth = counterpart(self.players.specs[target], path)
            if truth is not None:
                cell += self.image(load_images([truth], size)[0], f"{target}-{path.stem}-truth")
            cells.append(cell)
        self.translation_columns[target] = cells

    def add_styles(self, target: str, outputs: torch.Tensor) -> None:
        row = "".join(f"<td>{self.image(image, f'{target}-style{index + 1}')}</td>" for index, image in enumerate(outputs))
        self.style_rows.append(f"<tr><th>{html.escape(target)}</th>{row}</tr>")

    def add_reference(self, target: str, reference: torch.Tensor, output: torch.Tensor) -> None:
        cells = self.image(reference, f"{target}-reference") + " → " + self.image(output, f"{target}-reference-guided")
        self.reference_rows.append(f"<tr><th>{html.escape(target)}</th><td>{cells}</td></tr>")

    def write(self, distances: DistanceMatrix, note: str, size: int) -> Path:
        """The page, its images shown `size` (the models' resolution) times a whole factor: every pixel a square."""
        players = self.players
        shown = size * max(1, SHOWN_PIXELS // size)
        header = "".join(f"<th>{html.escape(name)}</th>" for name in self.translation_columns)
        rows = "".join(
            "<tr>" + "".join(f"<td>{column[index]}</td>" for column in self.translation_columns.values()) + "</tr>"
            for index in range(len(players.inputs))
        )
        table = "<tr><th></th>" + "".join(f"<th>{html.escape(n)}</th>" for n in distances.names) + "</tr>" + "".join(
            f"<tr><th>{html.escape(name)}</th>" + "".join(f"<td>{value:.3f}</td>" for value in distances.matrix[index].tolist()) + "</tr>"
            for index, name in enumerate(distances.names)
        )
        page = PAGE.format(
            family=html.escape(self.settings.family), base=html.escape(players.base), header=header, rows=rows,
            styles="".join(self.style_rows), references="".join(self.reference_rows), label=html.escape(distances.label),
            table=table, note=html.escape(note), count=len(players.inputs), shown=shown, inset=shown // 2,
        )  # fmt: skip
        path = self.out / "index.html"
        path.write_text(page, encoding="utf-8")
        return path


SHOWN_PIXELS = 128  # about how wide the page shows each image (32 px models 4x, 64 px 2x); a true answer beside it half that
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zoo demo: the {family} family</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
img {{ width: {shown}px; height: {shown}px; image-rendering: pixelated; border: 1px solid #ddd; margin: 1px; }}
td img + img {{ width: {inset}px; height: {inset}px; opacity: .9; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ padding: 4px 6px; text-align: center; font-size: 13px; }}
.matrix td {{ border: 1px solid #eee; font-variant-numeric: tabular-nums; }}
.heatmap {{ width: auto; height: auto; image-rendering: auto; border: none; }}
</style></head><body>
<h1>zoo demo: the {family} family</h1>
<p>{count} held-out images of <b>{base}</b> (no target model was trained on them), translated into every other domain
of the family (how: below). Beside each translation, small, is the same subject as that domain really draws it
(the true answer, never seen in training).</p>
<h2>Translations</h2>
<table><tr>{header}</tr>{rows}</table>
<h2>Multi-modal: the first input with random appearance codes on the last layers</h2>
<table>{styles}</table>
<h2>Reference-guided: the first input with the appearance of another held-out image of each domain</h2>
<table>{references}</table>
<h2>Model distances ({label})</h2>
<img class="heatmap" src="distances.png" alt="model distance heatmap">
<table class="matrix">{table}</table>
<p><small>{note}</small></p>
</body></html>
"""
