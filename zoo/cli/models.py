"""Commands about the models a zoo holds: import, sample, info, list, plugins, pull, push, remove."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..choices import Noise, parse_seeds
from ..devices import pick_device
from ..domains import describe, domain_status, get_domain
from ..errors import ZooError
from ..hf import is_hub_ref, pull_from_hub, push
from ..hub import import_url, is_url, pull
from ..images import (
    MAX_BATCH,
    all_or_nothing,
    check_free,
    grid,
    model_provenance,
    read_provenance,
    save_image,
)
from ..importers import import_checkpoint
from ..plugins import plugin_listing
from ..registry import Registry, check_name, load
from ..sampling import SEED_RANGE, sample, sample_seeds
from .base import DEVICE_HELP, app, console, error_console, new_table, print_json, progress_bar


@app.command("import")
def import_command(
    path: str = typer.Argument(..., help="A rosinality .pt, an NVIDIA .pkl (ada-pytorch or TF) or a zoo .safetensors file, "
                               "or an https URL of one (downloaded first)."),
    name: str = typer.Option(..., "--name", help="Name to install it under (lowercase a-z, 0-9, '-')."),
    family: Optional[str] = typer.Option(None, "--family", help="Family to join (default: a new family named NAME)."),
    n_mlp: Optional[int] = typer.Option(None, "--n-mlp", help="Expected number of mapping layers (checked against the file)."),
    channel_multiplier: Optional[int] = typer.Option(None, "--channel-multiplier", help="Expected channel multiplier (checked)."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="A URL's file must have this sha256 (checked before import)."),
    allow_unpinned: bool = typer.Option(False, "--allow-unpinned", help="Import whatever a URL serves, without --sha256."),
    force: bool = typer.Option(False, "--force", help="Replace an installed model of the same name."),
):
    """Convert a checkpoint (a file, or an https URL downloaded first) into zoo's format and install it
    (checkpoints/NAME.safetensors + registry.toml)."""
    options = dict(family=family, force=force, n_mlp=n_mlp, channel_multiplier=channel_multiplier)
    if is_url(path):
        with progress_bar() as progress:
            tasks = []
            entry = import_url(path, name, sha256=sha256, allow_unpinned=allow_unpinned, **options,
                               on_start=lambda total: tasks.append(progress.add_task(f"downloading {name}", total=total)),
                               on_chunk=lambda size: progress.advance(tasks[-1], size))  # fmt: skip
    else:
        if sha256 or allow_unpinned:
            raise ZooError("--sha256 and --allow-unpinned go with a URL; a local file is imported as it is")
        entry = import_checkpoint(Path(path), name, **options)
    console.print(
        f"installed [bold]{name}[/] ({entry['resolution']}px, family {entry['family']}, "
        f"from {entry['lineage']['source_format']}) -> {entry['file']}  sha256 {entry['sha256'][:16]}…"
    )


@app.command("sample")
def sample_command(
    model: str = typer.Argument(..., help="An installed model name or a .safetensors path."),
    n: Optional[int] = typer.Option(None, "--n", min=1, help="Number of images (default 16)."),
    seed: Optional[int] = typer.Option(None, "--seed", **SEED_RANGE, help="Seed of the z samples (default 0)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Instead of --n/--seed, NVIDIA-style seeds, e.g. 0-7,12: one "
                                        "image per seed, also written alone as OUT-seedNNNN.png beside the grid."),
    truncation: float = typer.Option(1.0, "--truncation", min=0.0, help="Truncation toward the mean latent (1 = none)."),
    noise: Noise = typer.Option(Noise.const, "--noise", help="const (stored maps, reproducible) or random."),
    out: Path = typer.Option(Path("grid.png"), "--out", help="Output grid image."),
    batch: int = typer.Option(16, "--batch", min=1, max=MAX_BATCH, help="Images per generator pass."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    force: bool = typer.Option(False, "--force", help="Overwrite --out (and the per-seed files) if they exist."),
):
    """Write a grid of random samples (and with --seeds, one file per seed)."""
    if seeds is not None and (n is not None or seed is not None):
        raise ZooError("--seeds names every image's seed; leave out --n and --seed")
    seed_list = parse_seeds(seeds) if seeds is not None else None
    per_seed = [out.with_name(f"{out.stem}-seed{value:04d}{out.suffix}") for value in seed_list or []]
    check_free([out, *per_seed], force)
    loaded = load(model, device=pick_device(device))
    count = len(seed_list) if seed_list else n or 16
    options = dict(truncation=truncation, noise=noise, batch_size=batch)
    with progress_bar() as progress:
        task = progress.add_task(f"sampling {model}", total=count)
        on_batch = lambda done: progress.advance(task, done)  # noqa: E731
        if seed_list:
            images = sample_seeds(loaded.generator, seed_list, **options, on_batch=on_batch)
        else:
            images = sample(loaded.generator, count, seed=seed or 0, **options, on_batch=on_batch)
    provenance = {"command": "sample", "models": [model_provenance(loaded)], "truncation": truncation, "noise": noise}
    with all_or_nothing() as written:
        for image, value, path in zip(images, seed_list or [], per_seed):
            written.append(save_image(image, path, force=True, provenance={**provenance, "seed": value}))
        seeds_facts = {"seeds": seed_list} if seed_list else {"seed": seed or 0, "n": count}
        written.append(save_image(grid(images), out, force=True, provenance={**provenance, **seeds_facts}))
    console.print(f"wrote {count} samples of {model} to {out}" + (f" and {len(per_seed)} per-seed files beside it" if per_seed else ""))


@app.command("info")
def info_command(
    model: str = typer.Argument(..., help="A domain, an installed model name, a .safetensors path, or a .png zoo wrote."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Show a model's config, lineage, size and sha256, and its domain's data, recipe and weights; or for an image zoo
    wrote, its provenance (models and their sha256, seed, method, swap level, zoo version, training data licence)."""
    facts = image_provenance(Path(model)) if model.lower().endswith(".png") else describe(model)
    if as_json:
        print_json(facts)
        return
    table = new_table("key", "value", title=model, show_header=False)
    for key, value in facts.items():
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    console.print(table)


def image_provenance(path: Path) -> dict:
    if not path.is_file():
        raise ZooError(f"{path}: no such image file")
    provenance = read_provenance(path)
    if provenance is None:
        raise ZooError(f"{path}: holds no zoo provenance (zoo did not write it, or it was re-saved without its metadata)")
    return provenance


@app.command("list")
def list_command(
    pattern: Optional[str] = typer.Argument(None, help="Wildcard filter on domain names, e.g. 'emoji-*'."),
    family: Optional[str] = typer.Option(None, "--family", help="Only this family."),
    installed: bool = typer.Option(False, "--installed", help="Only installed models."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Domains from every plugin and installed models, with their state."""
    rows = domain_status(pattern, family, installed)
    if as_json:
        print_json(rows)
        return
    columns = ("domain", "family", "resolution", "base", "state", "plugin", "version")
    table = new_table(*("px" if column == "resolution" else column for column in columns), title="zoo domains")
    for row in rows:
        table.add_row(*("" if row[key] is None else str(row[key]) for key in columns))
    console.print(table)


@app.command("plugins")
def plugins_command(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """Loaded plugins, their hooks and versions, and any plugin that failed to load."""
    rows = plugin_listing()
    if as_json:
        print_json(rows)
        return
    table = new_table("plugin", "distribution", "version", "hooks", "problems", title="zoo plugins")
    for row in rows:
        table.add_row(row["name"], row["distribution"] or "", row["version"] or "", ", ".join(row["hooks"]),
                      "\n".join(row["problems"]) or "ok")
    console.print(table)


@app.command("pull")
def pull_command(
    name: str = typer.Argument(..., help="A domain with published weights (see `zoo list`), or a Hub repo hf://OWNER/REPO[@REVISION]."),
    file: Optional[Path] = typer.Option(None, "--file", help="Use this local copy of the weights instead of downloading."),
    force: bool = typer.Option(False, "--force", help="Replace the installed model."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="The file's sha256, when the domain's plugin (or the Hub card) declares none."),
    allow_unpinned: bool = typer.Option(
        False, "--allow-unpinned", help="Install weights that no sha256 pins (whatever the URL serves)."
    ),
    as_name: Optional[str] = typer.Option(None, "--as", help="hf:// only: install under this name (default: the card's domain)."),
):
    """Download a domain's published weights (or a model pushed to the Hugging Face Hub), verify their sha256 and
    format (and family), import and register them."""
    if is_hub_ref(name):
        if file is not None or allow_unpinned:
            raise ZooError("--file and --allow-unpinned are for a domain's published weights; an hf:// pull is pinned by "
                           "the repo's model card or --sha256")  # fmt: skip
        entry = pull_from_hub(name, name=as_name, sha256=sha256, force=force)
        console.print(f"installed [bold]{entry.name}[/] from {entry.lineage['source']} -> {entry.file}  sha256 {entry.sha256[:16]}…",
                      soft_wrap=True)  # fmt: skip
        return
    with progress_bar() as progress:
        tasks = []
        entry = pull(
            name, file=file, force=force, sha256=sha256, allow_unpinned=allow_unpinned,
            on_start=lambda total: tasks.append(progress.add_task(f"downloading {name}", total=total)),
            on_chunk=lambda size: progress.advance(tasks[-1], size),
        )
    if not (get_domain(name).weights.sha256 or sha256):
        error_console.print(f"note: installed unpinned weights; recorded sha256 {entry['lineage']['source_sha256']} "
                            f"(pin it next time with --sha256)")
    console.print(f"installed [bold]{name}[/] -> {entry['file']}  sha256 {entry['sha256'][:16]}…")


@app.command("push")
def push_command(
    name: str = typer.Argument(..., help="An installed model."),
    repo_id: str = typer.Argument(..., help="The Hugging Face Hub repository, OWNER/REPO (created if missing)."),
    private: bool = typer.Option(False, "--private", help="Create the repository private (an existing one keeps its visibility)."),
):
    """Publish an installed model on the Hugging Face Hub: its safetensors file, a sample grid and a model card."""
    commit = push(name, repo_id, private=private)
    console.print(f"pushed {name} to hf://{repo_id}@{commit}; install it elsewhere with `zoo pull hf://{repo_id}`", soft_wrap=True)


@app.command("remove")
def remove_command(
    name: str = typer.Argument(..., help="An installed model."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    keep_runs: bool = typer.Option(False, "--keep-runs", help="Keep its training run (runs/NAME: snapshots, samples, metrics)."),
):
    """Uninstall a model: its registry entry, its checkpoint file and (unless --keep-runs) its training run."""
    registry = Registry()
    entry = registry.get(check_name(name))
    if entry is None:
        raise ZooError(f"model {name!r} is not installed; see `zoo list --installed`")
    doomed = registry.removal(entry, keep_runs=keep_runs)
    derived = registry.derived_from(name)
    if derived:
        error_console.print(f"note: {', '.join(derived)} {'was' if len(derived) == 1 else 'were'} made from {name} "
                            "(lineage); they stay installed but cannot be re-made or swapped without it", soft_wrap=True)  # fmt: skip
    if not yes and not typer.confirm(f"Remove {name} ({', '.join(map(str, doomed))})?"):
        raise typer.Exit(1)
    removed = registry.remove(name, keep_runs=keep_runs)
    console.print(f"removed {name}: {', '.join(map(str, removed))}")


