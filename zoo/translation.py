"""Translation between domains of one family: generate the source image's latent with another domain's model.

The content code w_c is the W+ latent found by inverting the input with the source model (never passed through a
mapping network again). The target renders it on every layer, or, for multi-modal and reference-guided output (the
paper's Eq. 10), on all but its last K layers, which take an appearance code w_a: a random w (truncated toward the
target's mean) or the inverted latent of a reference image.

Layer swap at translation time takes the low-resolution layers from the SOURCE model (the model the image was
inverted with; the base itself when the source is the base, as in the paper). `weights` builds the weight-swapped
model once; `features` runs the source and hands its activation at 2^(l+2) px to the target (the authors' code).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .checkpoint import ZooModel
from .errors import ZooError
from .images import all_or_nothing, check_free, grid, load_images, model_provenance, save_image
from .inversion import InversionResult, InversionSettings, SavedLatent, StepCallback, invert, invert_in_batches, load_latent
from .photos import AlignSettings, Crop, check_paste_back, load_inputs, paste_translations, pasted_path
from .registry import load
from .rendering import (  # noqa: F401 - also re-exported: zoo.translation was their home before zoo.rendering
    MAX_STYLES,
    SWAP_MODES,
    Renderer,
    TranslationOptions,
    check_same_family,
    check_styles,
    family_members,
    random_appearance,
    recipe_defaults,
    render_rows,
    translate,
    translate_multimodal,
    translate_with_reference,
    translation_options,
    with_appearance,
)
from .translator import Translator, distilled_rows, family_translator, reference_appearance


@dataclass
class TranslatedImages:
    """Translations held in memory, clamped to [-1, 1] as they would be saved, and the inversion they came from."""

    outputs: torch.Tensor  # (B, 3, H, W): the content code on every layer of the target
    styles: torch.Tensor | None  # (B, styles, 3, H, W): with random appearance codes; None when none were asked for
    inversion: InversionResult | None  # None for the distilled method, which inverts nothing


def translate_images(renderer: Renderer, inverted: InversionResult, *, styles: int = 0) -> TranslatedImages:
    """Render inverted images (`invert_in_batches` with the source) with `renderer`, and `styles` multi-modal outputs."""
    rows = render_rows(renderer, inverted.latents, inverted.noise_spec(), styles, None).clamp(-1, 1)
    return TranslatedImages(outputs=rows[:, 0], styles=rows[:, 1:] if styles else None, inversion=inverted)


# ---------------------------------------------------------------------------------------------------------------------
# Which models, which files




def resolve_method(settings: InversionSettings | None, targets: list[str]) -> InversionSettings:
    """--method auto -> the targets' recipe method ('bounded' for a domain without a recipe); any other as given."""
    settings = settings or InversionSettings(method="auto")
    if settings.method != "auto":
        return settings
    methods = {recipe.method if (recipe := recipe_defaults(target)) else "bounded" for target in targets}
    if len(methods) > 1:
        raise ZooError(f"the recipes of {', '.join(targets)} translate by different methods ({', '.join(sorted(methods))}); "
                       "pass --method")  # fmt: skip
    return replace(settings, method=methods.pop())






def output_path(out: Path, stem: str, source: str, target: str, suffix: str = "") -> Path:
    """<out>/<stem>-<source>-to-<target><suffix>.png: one name per input, target and variant."""
    return out / f"{stem}-{source}-to-{target}{suffix}.png"


# ---------------------------------------------------------------------------------------------------------------------
# The whole job: `zoo translate`


@dataclass
class TranslationJob:
    """What `zoo translate` does: invert inputs in `source` (or read saved latents), render them with each target."""

    source: str
    targets: list[str]
    out: Path
    inputs: list[Path] | None = None  # image files and folders of images, or
    latent_files: list[Path] | None = None  # latents saved by `zoo invert` with the source model
    swap: int | None = None  # None: the target's recipe default
    swap_mode: str = "weights"
    styles: int = 0
    reference: Path | None = None
    appearance_layers: int | None = None
    truncation: float | None = None
    seed: int = 0
    grid: bool = False
    force: bool = False
    inversion: InversionSettings | None = None
    batch_size: int = 16
    align: AlignSettings | None = None  # photos aligned as the source domain's data declares (zoo.photos)
    paste_back: bool = False  # also each translation warped back into its photo (NAME-pasted.png)

    def options_for(self, target: str) -> TranslationOptions:
        return translation_options(target, swap=self.swap, swap_mode=self.swap_mode, appearance_layers=self.appearance_layers,
                                   truncation=self.truncation, seed=self.seed, batch=self.batch_size)  # fmt: skip


@dataclass
class Inputs:
    """The content to translate: names for the output files, W+ latents and their noise ('const' or per-image maps)."""

    stems: list[str]
    latents: torch.Tensor | None  # None for the distilled method
    noise: object
    images: torch.Tensor | None  # the input pixels, when inputs were images


@dataclass
class PreparedTranslation:
    """A checked job: models loaded and in one family, inputs readable, outputs free. Only the work is left."""

    job: TranslationJob
    source: ZooModel
    targets: dict[str, ZooModel]
    renderers: dict[str, Renderer]
    plan: "OutputPlan"
    stems: list[str]
    images: torch.Tensor | None  # input pixels, or None when the inputs are saved latents
    saved: list[SavedLatent] | None
    reference_image: torch.Tensor | None
    crops: list[Crop] | None = None  # the aligned crops the images are, when inputs were aligned
    translator: Translator | None = None  # the distilled method's network


def prepare_translation(job: TranslationJob, device="cpu") -> PreparedTranslation:
    """Everything that can fail on bad input, before any work: models, family, inputs, reference, output files."""
    if (job.inputs is None) == (job.latent_files is None):
        raise ZooError("give input images or --latent files (one or the other)")
    if job.reference is not None and len(job.targets) != 1:
        raise ZooError("--reference takes its appearance from one target domain; use it with a single --to")
    check_styles(job.styles)
    requested = job.inversion.method if job.inversion else "auto"
    job.inversion = resolve_method(job.inversion, job.targets)
    if job.inversion.method == "distilled" and job.latent_files:
        if requested != "auto":
            raise ZooError("--method distilled translates images, not saved latents; give images or another --method")
        job.inversion = replace(job.inversion, method="bounded")  # saved latents are rendered as they are
    source = load(job.source, device=device)
    targets = {name: load(name, device=device) for name in job.targets}
    for target in targets.values():
        check_same_family(source, target)
    renderers = {name: Renderer(source.generator, model.generator, job.options_for(name)) for name, model in targets.items()}
    reference_image = None
    if job.reference is not None:
        reference_image = load_images([job.reference], targets[job.targets[0]].info.config.size)
    saved = images = crops = None
    if job.latent_files:
        saved = [load_latent(path, source) for path in job.latent_files]
        stems = [Path(item.metadata.get("source") or path.name).stem for item, path in zip(saved, job.latent_files)]
    else:
        loaded = load_inputs(job.inputs, job.source, source.info.config.size, job.align)
        images, stems, crops = loaded.images, loaded.names, loaded.crops
    plan = output_plan(job, stems)
    if job.paste_back:
        check_paste_back(crops, job.targets)
    pasted = [pasted_path(path) for paths in plan.per_input for path in paths] if job.paste_back else []
    check_free(plan.paths() + pasted, job.force)
    translator = None
    if job.inversion.method == "distilled":
        translator = family_translator(source, job.targets, job.inversion.translator)
    return PreparedTranslation(job, source, targets, renderers, plan, stems, images, saved, reference_image, crops, translator)


def run_translation(prepared: PreparedTranslation, on_invert: StepCallback | None = None) -> list[Path]:
    """Translate (one pass of the distilled translator, or invert / read the saved latents and render with every
    target), then write; returns the files written."""
    content, rows = distilled_translations(prepared, on_invert) if prepared.translator else inverted_translations(prepared, on_invert)
    provenance = translation_provenance(prepared)
    with all_or_nothing() as written:
        written += write_outputs(prepared.job, prepared.plan, content, rows, provenance)
        if prepared.job.paste_back:
            written += paste_translations(prepared.crops, prepared.plan.per_input, rows[prepared.job.targets[0]], provenance)
    return written


def distilled_translations(prepared: PreparedTranslation, on_invert: StepCallback | None) -> tuple["Inputs", dict]:
    job, reference = prepared.job, None
    if prepared.reference_image is not None:
        reference = reference_appearance(job.inversion.encoder, prepared.source, prepared.reference_image,
                                         prepared.translator.config.appearance_layers)  # fmt: skip
    rows = {name: distilled_rows(prepared.translator, prepared.images, name, renderer, job.styles, reference)
            for name, renderer in prepared.renderers.items()}  # fmt: skip
    if on_invert:
        on_invert(1, 1)
    return Inputs(prepared.stems, None, None, prepared.images), rows


def inverted_translations(prepared: PreparedTranslation, on_invert: StepCallback | None) -> tuple["Inputs", dict]:
    job = prepared.job
    content = read_inputs(prepared, on_invert)
    reference = None
    if prepared.reference_image is not None:
        target = prepared.targets[job.targets[0]]
        reference = invert(target, prepared.reference_image, job.inversion, seed=job.seed).latents
    rows = {name: render_rows(renderer, content.latents, content.noise, job.styles, reference)
            for name, renderer in prepared.renderers.items()}  # fmt: skip
    return content, rows


def translation_provenance(prepared: PreparedTranslation) -> dict:
    """What each output image records of how it was made (`zoo info IMAGE.png` shows it)."""
    job, inversion = prepared.job, prepared.job.inversion
    content = ({"latent_files": [path.name for path in job.latent_files]} if job.latent_files
               else {"method": inversion.method if inversion else None, "steps": inversion.steps if inversion else None})  # fmt: skip
    return {
        "command": "translate",
        "source": model_provenance(prepared.source),
        "models": [model_provenance(model) for model in prepared.targets.values()],
        "swap": {name: renderer.options.swap for name, renderer in prepared.renderers.items()},
        "swap_mode": job.swap_mode,
        "seed": job.seed,
        "styles": job.styles,
        "reference": job.reference.name if job.reference is not None else None,
        **content,
    }


@dataclass
class OutputPlan:
    per_input: list[list[Path]]  # each input's files: one per target, style and reference (or one --to all grid)
    grid: Path | None = None  # --grid: every input in one picture (with --to all: each domain's first output)

    def paths(self) -> list[Path]:
        return [path for paths in self.per_input for path in paths] + ([self.grid] if self.grid else [])


def output_plan(job: TranslationJob, stems: list[str]) -> OutputPlan:
    if len(job.targets) > 1:
        per_input = [[job.out / f"{stem}-{job.source}-to-all.png"] for stem in stems]
        return OutputPlan(per_input, job.out / f"{job.source}-to-all-grid.png" if job.grid else None)
    target = job.targets[0]
    suffixes = [""] + [f"-style{index + 1}" for index in range(job.styles)]
    if job.reference is not None:
        suffixes.append(f"-ref-{job.reference.stem}")
    per_input = [[output_path(job.out, stem, job.source, target, suffix) for suffix in suffixes] for stem in stems]
    return OutputPlan(per_input, job.out / f"{job.source}-to-{target}-grid.png" if job.grid else None)


def read_inputs(prepared: PreparedTranslation, on_invert: StepCallback | None) -> Inputs:
    """The content codes: saved latents as they are, or the inputs inverted with the source model."""
    job, source = prepared.job, prepared.source
    if prepared.saved:
        device = source.generator.input.input.device
        latents = torch.stack([item.latent for item in prepared.saved]).to(device)
        noise = "const"
        if all(item.noise is not None for item in prepared.saved):
            noise = [torch.stack(layers).to(device) for layers in zip(*(item.noise for item in prepared.saved))]
        return Inputs(prepared.stems, latents, noise, None)
    result = invert_in_batches(source, prepared.images, job.inversion, batch_size=job.batch_size, seed=job.seed, on_step=on_invert)
    return Inputs(prepared.stems, result.latents, result.noise_spec(), prepared.images)




def write_outputs(job: TranslationJob, plan: OutputPlan, content: Inputs, rows: dict[str, torch.Tensor],
                  provenance: dict) -> list[Path]:  # fmt: skip
    with all_or_nothing() as written:
        write_planned(job, plan, content, rows, written, provenance)
    return written


def write_planned(job: TranslationJob, plan: OutputPlan, content: Inputs, rows: dict[str, torch.Tensor], written: list[Path],
                  provenance: dict) -> None:  # fmt: skip
    job.out.mkdir(parents=True, exist_ok=True)
    inputs = content.images.cpu() if content.images is not None else None
    for index, stem in enumerate(content.stems):
        facts = {**provenance, "input": stem}
        if len(job.targets) > 1:
            per_target = [rows[name][index] for name in job.targets]
            if inputs is not None:
                per_target = [torch.cat([inputs[index][None], images]) for images in per_target]
            images = torch.stack(per_target)
            written.append(save_image(grid(images.flatten(0, 1), nrow=images.shape[1]), plan.per_input[index][0], force=True,
                                      provenance=facts))  # fmt: skip
            continue
        for image, path in zip(rows[job.targets[0]][index], plan.per_input[index]):
            written.append(save_image(image, path, force=True, provenance=facts))
    if plan.grid:  # one row per input: its outputs, or with several targets each target's first output
        table = rows[job.targets[0]] if len(job.targets) == 1 else torch.stack([rows[name][:, 0] for name in job.targets], 1)
        if inputs is not None:
            table = torch.cat([inputs[:, None], table], dim=1)
        written.append(save_image(grid(table.flatten(0, 1), nrow=table.shape[1]), plan.grid, force=True,
                                  provenance={**provenance, "inputs": content.stems}))  # fmt: skip
