"""Commands that measure: distance-matrix (the paper's Eq. 1, Table I) and eval (Tables II and III)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..checkpoint import read_info
from ..choices import SwapMode, complete_metric
from ..devices import pick_device
from ..distance import (
    DEFAULT_METRIC,
    DistanceMatrix,
    choose_models,
    distance_matrix,
    load_named,
    output_paths,
    save_distance_matrix,
    swap_levels,
    variant_distances,
)
from ..errors import ZooError
from ..evaluation import EvaluationJob, prepare_evaluation, run_evaluations, save_evaluation, summary_rows
from ..images import (
    MAX_BATCH,
    check_free,
)
from ..inversion import InversionSettings
from ..metrics import get_metric
from ..photos import AlignSettings
from ..registry import resolve
from ..sampling import SEED_RANGE
from .base import DEVICE_HELP, app, console, error_console, new_table, print_json, progress_bar
from .translate import BATCH_OPTION, announce_loss, with_align_options, with_inversion_options


@app.command("distance-matrix")
def distance_matrix_command(
    domains: Optional[str] = typer.Option(None, "--domains", help="Comma-separated models to compare (default: every installed model)."),
    family: Optional[str] = typer.Option(None, "--family", help="Compare every installed model of this family."),
    variants: Optional[str] = typer.Option(None, "--variants", help="A fine-tuned domain: its base, FT, FC-FT and FC-FT-LS models (Table I)."),
    ft: Optional[str] = typer.Option(None, "--ft", help="With --variants: the domain's model fine-tuned without FreezeFC (the FT row)."),
    samples: int = typer.Option(2000, "--samples", min=1, help="Shared z samples, rendered by every model (the paper's 2000)."),
    metric: str = typer.Option(DEFAULT_METRIC, "--metric", autocompletion=complete_metric,
                               help="lpips-alex (the paper's), lpips-vgg, ssim, l1, l2 or a plugin's (`zoo plugins`)."),
    seed: int = typer.Option(0, "--seed", **SEED_RANGE, help="Seed of the z samples."),
    batch: int = typer.Option(16, "--batch", min=1, max=MAX_BATCH, help="Samples per generator pass."),
    truncation: float = typer.Option(1.0, "--truncation", min=0.0, help="Truncation toward each model's mean latent (1 = none)."),
    out: Path = typer.Option(Path("distance-matrix"), "--out", help="Writes PREFIX.csv, PREFIX.json and a heatmap PREFIX.png."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the matrix as JSON (as PREFIX.json holds it) instead of a table."),
):
    """Model distances (the paper's Eq. 1): the mean distance between two models' images of the same z, for every pair."""
    if ft and not variants:
        raise ZooError("--ft goes with --variants DOMAIN")
    if variants and (domains or family):
        raise ZooError("--variants compares one domain's variants; leave out --domains and --family")
    paths = output_paths(out, force=force)
    chosen_device = pick_device(device)
    options = dict(metric=get_metric(metric, chosen_device), samples=samples, seed=seed, batch=batch, truncation=truncation)
    if variants:
        compute = partial(variant_distances, variants, ft=ft, device=chosen_device, **options)
    else:
        names = choose_models([name.strip() for name in domains.split(",") if name.strip()] if domains else None, family)
        compute = partial(distance_matrix, [load_named(name, chosen_device) for name in names], **options)
    with progress_bar() as progress:
        task = progress.add_task(f"{samples} samples", total=samples)
        result = compute(on_batch=lambda done: progress.advance(task, done))
    save_distance_matrix(result, out, force=force)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(variants_table(result) if variants else matrix_table(result))
    console.print(distance_note(result), markup=False)
    console.print(f"wrote {', '.join(str(path) for path in paths)}")


def matrix_table(result: DistanceMatrix) -> Table:
    table = new_table("", *result.names, right=tuple(result.names))
    for row, name in enumerate(result.names):
        table.add_row(name, *(distance_cell(result, row, column) for column in range(len(result.names))))
    return table


def variants_table(result: DistanceMatrix) -> Table:
    """The paper's Table I for one domain: each variant's distance to the base (the first model)."""
    distance = f"distance to {result.names[0]}"
    table = new_table("variant", distance, right=(distance,))
    for column, name in enumerate(result.names):
        table.add_row(name, distance_cell(result, 0, column))
    return table


def distance_cell(result: DistanceMatrix, row: int, column: int) -> str:
    return f"{float(result.matrix[row, column]):.3f}" + ("*" if result.cross_family[row, column] else "")


def distance_note(result: DistanceMatrix) -> str:
    note = "; * cross-family: the mapping networks differ" if result.cross_family.any() else ""
    return f"{result.label}: mean over {result.samples} shared z, seed {result.seed}, truncation {result.truncation:g}{note}"


@app.command("eval")
@with_inversion_options
@with_align_options
def eval_command(
    source: str = typer.Option(..., "--from", help="The inputs' domain (an installed model)."),
    target: str = typer.Option(..., "--to", help="Domain(s) to translate into, comma-separated: one inversion serves them all."),
    inputs: str = typer.Option(..., "--inputs", help="A folder (or image) of --from inputs, or 'test-split': --from's bundled "
                               "images that --to's training split leaves out (the emoji family's held-out emoji)."),
    metric: str = typer.Option(DEFAULT_METRIC, "--metric", autocompletion=complete_metric,
                               help="lpips-alex (the paper's), lpips-vgg, ssim, l1, l2 or a plugin's (`zoo plugins`)."),
    swap: Optional[str] = typer.Option(None, "--swap", help="Layer swap level(s) l, comma-separated (0 = none; default: the recipe's), "
                                       "or 'all': every level the models' resolution has (0 to 3 at 64 px)."),
    swap_mode: SwapMode = typer.Option(SwapMode.weights, "--swap-mode", help="weights (the paper's) or features (the authors' code)."),
    styles: int = typer.Option(2, "--styles", min=0, help="Outputs per input with random appearance codes, for their diversity."),
    appearance_layers: Optional[int] = typer.Option(None, "--appearance-layers", min=0, help="K: last layers taking the appearance code."),
    truncation: Optional[float] = typer.Option(None, "--truncation", help="Truncation of random appearance codes (default: recipe)."),
    fid: Optional[bool] = typer.Option(None, "--fid/--no-fid", help="FID against --to's data (default: if the Inception weights are here)."),
    reference_data: Optional[Path] = typer.Option(None, "--reference-data", help="FID's real images (default: --to's bundled data)."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="--to images named like the inputs (default: --to's bundled data)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=2, help="Evaluate a random subset of N inputs (seeded)."),
    seed: int = typer.Option(0, "--seed", **SEED_RANGE, help="Seed of the inversion, appearance codes, diversity pairs and --limit."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write every number (and each input's) as JSON to "
                                             "this file; '-' prints it instead of the tables."),
    force: bool = typer.Option(False, "--force", help="Overwrite the --json file."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    batch: int = BATCH_OPTION,
    settings: InversionSettings = None,
    alignment: AlignSettings = None,
):
    """Translate inputs and measure the outputs as the paper's Tables II and III do, plus paired ground truth."""
    to_stdout = json_path == Path("-")
    if json_path and not to_stdout:
        check_free([json_path], force)
    swaps = [None] if swap is None else parse_levels(swap, source)
    jobs = [
        EvaluationJob(
            source=source, target=name, inputs=inputs, metric=metric, swap=level, swap_mode=swap_mode, styles=styles,
            appearance_layers=appearance_layers, truncation=truncation, inversion=settings, seed=seed, batch=batch,
            fid="auto" if fid is None else fid, reference_data=reference_data, pairs=pairs, limit=limit, align=alignment,
        )
        for name in target.split(",") for level in swaps
    ]  # fmt: skip
    chosen = pick_device(device)
    prepared = [prepare_evaluation(job, device=chosen) for job in jobs]
    announce_loss(prepared[0].job.inversion, chosen, prepared[0].source)
    for item in prepared:
        if item.fid:
            error_console.print(f"FID: after the inversion, the outputs and {len(item.fid.reference)} images of {item.fid.folder} "
                                "go through Inception-v3 (minutes on a CPU)", soft_wrap=True)  # fmt: skip
    with progress_bar() as progress:
        task = progress.add_task(f"inverting {len(prepared[0].files)} image(s) in {source}", total=None)
        results = run_evaluations(prepared, on_invert=lambda done, total: progress.update(task, completed=done, total=total))
    if to_stdout:
        print_json(results[0].to_dict() if len(results) == 1 else [result.to_dict() for result in results])
        return
    for result in results:
        table = new_table("measure", "value", "metric", right=("value",),
                          title=f"{source} -> {result.target}: {len(result.inputs)} inputs, swap l={result.translation['swap']}")  # fmt: skip
        for row in summary_rows(result):
            table.add_row(*row)
        console.print(table)
        for note in result.notes:
            console.print(f"note: {note}", markup=False, soft_wrap=True)
    if json_path:
        save_evaluation(results[0] if len(results) == 1 else results, json_path, force=force)
        console.print(f"wrote {json_path}")


def parse_levels(text: str, source: str) -> list[int]:
    """--swap: levels separated by commas, or 'all' (every level of --from's resolution, 0 included)."""
    if text.strip() == "all":
        return [0, *swap_levels(read_info(resolve(source)[0]).config.size)]
    items = [item.strip() for item in text.split(",")]
    if not all(item.isdigit() for item in items):
        raise ZooError(f"--swap {text!r}: give levels 0 (none), 1, 2, ... separated by commas, or all")
    return [int(item) for item in items]


