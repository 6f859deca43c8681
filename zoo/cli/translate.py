"""Commands that translate: align, translate, invert, demo, serve (the inversion and alignment option groups)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import typer

from ..choices import Method, Perceptual, PixelLoss, Precision, SwapMode, complete_metric
from ..demo import DemoSettings, run_demo
from ..devices import compute_dtype, dtype_name, pick_device
from ..domains import get_domain
from ..encoder import default_encoder, load_encoder
from ..errors import ZooError
from ..images import (
    MAX_BATCH,
    all_or_nothing,
    check_free,
    model_provenance,
    save_image,
)
from ..inversion import InversionSettings, invert_in_batches, reconstruction_scores, resolve_perceptual, save_latent
from ..metrics import BACKBONE_DIR_VARIABLE, LPIPS_BACKBONES
from ..photos import AlignSettings, align_photos, load_inputs
from ..registry import load
from ..sampling import SEED_RANGE
from ..translation import TranslationJob, family_members, prepare_translation, run_translation
from .base import DEVICE_HELP, app, console, error_console, new_table, print_json, progress_bar, with_options

INVERSION_OPTIONS = {  # name -> (type, option); the names are InversionSettings' fields
    "method": (Method, typer.Option(Method.auto, "--method", help="auto (the target's recipe; bounded for zoo invert), bounded (the paper's "
                                 "SeFa-bounded search), projection (StyleGAN2's), encoder (one pass of the model's trained encoder), "
                                 "hybrid (encoder, then --steps under a prior) or distilled (translate/eval: one pass of the "
                                 "family's trained translator, no inversion).")),
    "translator": (Optional[str], typer.Option(None, "--translator", help="distilled: an installed translator (default: the one made for --from).")),
    "encoder": (Optional[str], typer.Option(None, "--encoder", help="encoder/hybrid: an installed encoder (default: the one made for the model).")),
    "prior_weight": (float, typer.Option(0.01, "--prior-weight", min=0.0, help="hybrid: weight of the Gaussian prior on W.")),
    "steps": (int, typer.Option(500, "--steps", min=1, help="Optimisation steps per image.")),
    "lr": (float, typer.Option(0.1, "--inversion-lr", help="Adam learning rate (warm-up 5%, cosine ramp-down over the last 25%).")),
    "directions": (int, typer.Option(0, "--directions", "-k", min=0, help="Bounded: search the top K SeFa directions (0 = all).")),
    "w_plus": (bool, typer.Option(False, "--w-plus", help="One latent per layer (W+) instead of one w.")),
    "optimize_noise": (Optional[bool], typer.Option(None, "--optimize-noise/--no-optimize-noise",
                                                    help="Optimise noise maps (default: projection only).")),
    "perceptual": (Perceptual, typer.Option(Perceptual.auto, "--perceptual", help="auto (LPIPS-VGG if its weights are here, else SSIM), lpips-vgg, ssim, none.")),
    "pixel_loss": (PixelLoss, typer.Option(PixelLoss.l1, "--pixel-loss", help="l1 or l2.")),
    "precision": (Precision, typer.Option(Precision.auto, "--precision", help="Synthesis while optimising: auto (bfloat16 where the CPU/GPU "
                                    "computes it natively and faster, else float32), float32 or bfloat16.")),
}
BATCH_OPTION = typer.Option(16, "--batch", min=1, max=MAX_BATCH, help="Images inverted together.")


# Commands taking these receive them as one InversionSettings, their `settings` parameter.
with_inversion_options = with_options(INVERSION_OPTIONS, "settings", lambda values: InversionSettings(**values))
ALIGN_OPTIONS = {  # name -> (type, option); the names are AlignSettings' fields
    "align": (str, typer.Option("auto", "--align", help="auto (align photos as the --from domain's data declares: faces like FFHQ, "
                                "animals centre-cropped), on (FFHQ faces when it declares nothing) or off.")),
    "largest": (bool, typer.Option(False, "--largest", help="Only the largest face of each photo (default: every face, numbered).")),
    "detector": (str, typer.Option("mtcnn", "--detector", help="Face detector: mtcnn (shipped) or one a plugin adds.")),
}
with_align_options = with_options(ALIGN_OPTIONS, "alignment", lambda values: AlignSettings(**values))


@app.command("align")
def align_command(
    inputs: list[Path] = typer.Argument(..., help="Photos or folders of photos."),
    domain: str = typer.Option(..., "--domain", help="Cut them as this domain's data is cut (e.g. face: FFHQ alignment)."),
    out: Path = typer.Option(Path("aligned"), "--out", help="Output folder: NAME.png and its transform NAME.json."),
    size: Optional[int] = typer.Option(None, "--size", min=8, help="Crop side in px (default: the domain's resolution)."),
    largest: bool = ALIGN_OPTIONS["largest"][1],
    detector: str = ALIGN_OPTIONS["detector"][1],
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
):
    """Detect and align the faces of photos (or centre-crop them) as a domain's model was trained."""
    crops = align_photos(inputs, domain, size or get_domain(domain).resolution, out, AlignSettings("on", largest, detector), force)
    console.print(f"wrote {len(crops)} crop(s) and their transforms to {out}/")


def announce_loss(settings: InversionSettings, device: torch.device, model=None) -> None:
    """Say which perceptual term and precision the inversion uses (both depend on this machine); for the encoder
    methods, first check that `model` has a usable encoder (a one-line error before any work)."""
    if settings.method == "distilled":
        error_console.print(f"translation: distilled translator (one forward pass, no inversion) on {device}", soft_wrap=True)
        return
    if settings.method in ("encoder", "hybrid") and model is not None:
        name = settings.encoder or default_encoder(model)
        load_encoder(name, base=model)
        if settings.method == "encoder":
            error_console.print(f"inversion: encoder {name} (one forward pass) on {device}", soft_wrap=True)
            return
    used = resolve_perceptual(settings.perceptual)
    note = f" (no LPIPS-VGG weights here: {LPIPS_BACKBONES['vgg'][1]} in ${BACKBONE_DIR_VARIABLE} enables it)" if settings.perceptual == "auto" and used == "ssim" else ""
    precision = dtype_name(compute_dtype(settings.precision, device))
    error_console.print(f"inversion: {settings.method}, {settings.steps} steps, loss {settings.pixel_loss} + {used}{note}, "
                        f"{precision} synthesis on {device}", soft_wrap=True)  # fmt: skip


@app.command("translate")
@with_inversion_options
@with_align_options
def translate_command(
    inputs: Optional[list[Path]] = typer.Argument(None, help="Images or folders of images in the --from domain."),
    source: str = typer.Option(..., "--from", help="The inputs' domain (an installed model)."),
    target: str = typer.Option(..., "--to", help="The domain to translate into, or 'all' for every domain of the family."),
    out: Path = typer.Option(Path("out"), "--out", help="Output folder."),
    swap: Optional[int] = typer.Option(None, "--swap", min=0, help="Layer swap l (0 = none; default: the target's recipe)."),
    swap_mode: SwapMode = typer.Option(SwapMode.weights, "--swap-mode", help="weights (the paper's) or features (the authors' code)."),
    styles: int = typer.Option(0, "--styles", min=0, help="Also N outputs with random appearance codes (multi-modal)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Also an output with this target-domain image's appearance."),
    appearance_layers: Optional[int] = typer.Option(None, "--appearance-layers", min=0, help="K: last layers taking the appearance code."),
    truncation: Optional[float] = typer.Option(None, "--truncation", help="Truncation of random appearance codes (default: recipe)."),
    seed: int = typer.Option(0, "--seed", **SEED_RANGE, help="Seed of appearance codes and of the inversion."),
    grid_flag: bool = typer.Option(False, "--grid", help="Also one grid of every input and its outputs."),
    latent: Optional[list[Path]] = typer.Option(None, "--latent", help="Latent files from `zoo invert` instead of images."),
    paste_back: bool = typer.Option(False, "--paste-back", help="Also each translation warped back into its photo (NAME-pasted.png)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    batch: int = BATCH_OPTION,
    settings: InversionSettings = None,
    alignment: AlignSettings = None,
):
    """Translate images from one domain into another: invert in --from, generate with --to (the paper's Eq. 4)."""
    if bool(inputs) == bool(latent):
        raise ZooError("give input images (or folders) or --latent files, one or the other")
    targets = family_members(source) if target == "all" else [target]
    if not targets:
        raise ZooError(f"{source} has no other installed domain in its family; see `zoo list --installed`")
    job = TranslationJob(
        source=source, targets=targets, out=out, inputs=inputs or None, latent_files=latent,
        swap=swap, swap_mode=swap_mode, styles=styles, reference=reference, appearance_layers=appearance_layers,
        truncation=truncation, seed=seed, grid=grid_flag, force=force, inversion=settings, batch_size=batch,
        align=alignment, paste_back=paste_back,
    )  # fmt: skip
    chosen = pick_device(device)
    prepared = prepare_translation(job, device=chosen)
    if inputs:
        announce_loss(prepared.job.inversion, chosen, prepared.source)
    with progress_bar() as progress:
        task = progress.add_task(f"inverting {len(prepared.stems) if inputs else 0} image(s) in {source}", total=None)
        written = run_translation(prepared, on_invert=lambda done, total: progress.update(task, completed=done, total=total))
    console.print(f"wrote {len(written)} image(s) to {out}/ ({source} -> {', '.join(targets)})")


@app.command("invert")
@with_inversion_options
@with_align_options
def invert_command(
    domain: str = typer.Argument(..., help="The images' domain (an installed model)."),
    inputs: list[Path] = typer.Argument(..., help="Images or folders of images."),
    out: Path = typer.Option(Path("out"), "--out", help="Output folder for latents and reconstructions."),
    seed: int = typer.Option(0, "--seed", **SEED_RANGE, help="Seed of the inversion's random draws."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    batch: int = BATCH_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the per-image scores and files as JSON instead of a table."),
    settings: InversionSettings = None,
    alignment: AlignSettings = None,
):
    """Invert images into a model's latent space: writes STEM-DOMAIN.latent.safetensors and STEM-DOMAIN-reconstruction.png."""
    chosen = pick_device(device)
    model = load(domain, device=chosen)
    loaded = load_inputs(inputs, domain, model.info.config.size, alignment)
    images, names = loaded.images, loaded.names
    latent_paths = [out / f"{name}-{domain}.latent.safetensors" for name in names]
    image_paths = [out / f"{name}-{domain}-reconstruction.png" for name in names]
    check_free(latent_paths + image_paths, force)
    if settings.method == "auto":  # zoo invert's default: the paper's bounded inversion
        settings = InversionSettings(**{**vars(settings), "method": "bounded"})
    announce_loss(settings, chosen, model)
    with progress_bar() as progress:
        task = progress.add_task(f"inverting {len(names)} image(s) in {domain}", total=None)
        result = invert_in_batches(model, images, settings, batch_size=batch, seed=seed,
                                   on_step=lambda done, total: progress.update(task, completed=done, total=total))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    scores = reconstruction_scores(result.reconstructions.cpu(), images)
    provenance = {"command": "invert", "models": [model_provenance(model)], "method": settings.method, "steps": settings.steps,
                  "seed": seed}  # fmt: skip
    with all_or_nothing() as written:
        for index, label in enumerate(loaded.labels):
            written.append(save_latent(latent_paths[index], result, index, model=model, source=label, force=True))
            written.append(save_image(result.reconstructions[index], image_paths[index], force=True,
                                      provenance={**provenance, "input": label}))  # fmt: skip
    rows = [{"image": label, "ssim": float(scores["ssim"][index]), "l1": float(scores["l1"][index]),
             "latent": str(latent_paths[index]), "reconstruction": str(image_paths[index])} for index, label in enumerate(loaded.labels)]  # fmt: skip
    if as_json:
        print_json({"domain": domain, "method": settings.method, "steps": settings.steps, "images": rows})
        return
    table = new_table("image", "SSIM", "L1 (0-255)", "latent", "reconstruction", right=("SSIM", "L1 (0-255)"),
                      title=f"{domain}: {settings.method} inversion, {settings.steps} steps")  # fmt: skip
    for row in rows:
        table.add_row(row["image"], f"{row['ssim']:.4f}", f"{row['l1']:.2f}", row["latent"], row["reconstruction"])
    console.print(table)
    console.print(f"mean SSIM {scores['ssim'].mean():.4f}, mean L1 {scores['l1'].mean():.2f} (0-255) over {len(names)} image(s)")


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo"), "--out", help="Folder for index.html and its images."),
    family: str = typer.Option("emoji", "--family", help="An installed family with a held-out split (default: the embedded emoji zoo)."),
    inputs: int = typer.Option(6, "--inputs", min=1, help="Held-out images to translate."),
    styles: int = typer.Option(4, "--styles", min=1, help="Random appearance codes per domain (multi-modal)."),
    steps: int = typer.Option(300, "--steps", min=1, help="Inversion steps."),
    samples: int = typer.Option(256, "--samples", min=1, help="z samples per model for the distance matrix."),
    metric: str = typer.Option("auto", "--metric", autocompletion=complete_metric, help="Distance metric (auto: lpips-alex if its weights are here, else ssim)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
):
    """Translate held-out images of a family's base into every domain, with multi-modal, reference-guided and distance views."""
    settings = DemoSettings(family=family, inputs=inputs, styles=styles, steps=steps, samples=samples, metric=metric)
    with progress_bar() as progress:
        task = progress.add_task(f"inverting {inputs} held-out image(s)", total=None)
        page = run_demo(out, settings, force=force, device=pick_device(device),
                        on_step=lambda done, total: progress.update(task, completed=done, total=total))  # fmt: skip
    console.print(f"wrote {page} (open it in a browser) and its images in {out}/images")


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 opens it to your network)."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="Port to listen on."),
):
    """A local web app: upload an image (or pick an example), see it in every domain of its family (`docs/serve.md`)."""
    from ..serve import serve

    serve(host, port)


