"""The `zoo` command line: a thin layer over the Python API (each command calls one or two public functions).

Conventions every command follows: `-h` and `--help`; options with fixed choices typed with the enums of
zoo/choices.py; tables made by `new_table` (cells wrap, nothing is cut at any width or in a pipe) and each with a
`--json` form; plain help text laid out by click (wrapped, never cut).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import os
import shlex
import sys
import typing
import warnings
from functools import partial
from pathlib import Path
from typing import Optional

import torch
import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from . import __version__
from .choices import LogSink, Method, Noise, Perceptual, PixelLoss, Precision, SwapMode, choice, complete_metric, parse_seeds
from .demo import DemoSettings, run_demo
from .devices import compute_dtype, dtype_name, pick_device, tune_cpu_allocator
from .distance import (
    DEFAULT_METRIC,
    DistanceMatrix,
    choose_models,
    distance_matrix,
    load_named,
    output_paths,
    save_distance_matrix,
    variant_distances,
)
from .domains import describe, domain_status, get_domain
from .encoder import DEFAULT_BACKBONE, EncoderTrainConfig, default_encoder, load_encoder, train_and_install_encoder
from .environment import epilog
from .errors import SettingError, ZooError, environment_problem
from .evaluation import EvaluationJob, prepare_evaluation, run_evaluations, save_evaluation, summary_rows
from .hf import is_hub_ref, pull_from_hub, push
from .hub import import_url, is_url, pull
from .images import (
    MAX_BATCH,
    all_or_nothing,
    check_free,
    grid,
    model_provenance,
    read_provenance,
    save_image,
)
from .importers import import_checkpoint
from .inversion import InversionSettings, invert_in_batches, reconstruction_scores, resolve_perceptual, save_latent
from .logging_sinks import TENSORBOARD_DIR, TensorBoardSink
from .metrics import BACKBONE_DIR_VARIABLE, LPIPS_BACKBONES, get_metric
from .photos import AlignSettings, align_photos, load_inputs
from .plugins import plugin_listing, register_commands
from .progress import format_metrics, rich_progress
from .recipes import parse_channels, plan_add_domain, plan_train_base
from .registry import Registry, check_name, load
from .sampling import SEED_RANGE, sample, sample_seeds
from .swap import install_swapped, level_resolutions
from .training import TrainConfig, train_and_install
from .translation import TranslationJob, family_members, prepare_translation, run_translation
from .translator import TranslatorTrainConfig, train_and_install_translator


class CommandsInFull(TyperGroup):
    """`zoo --help` lists each command with its whole first paragraph, wrapped (click cuts it to one line with '...')."""

    def format_commands(self, ctx, formatter) -> None:
        commands = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        rows = [(name, inspect.cleandoc(command.help or "").split("\n\n")[0].replace("\n", " "))
                for name, command in commands if command is not None and not command.hidden]  # fmt: skip
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="zoo",
    cls=CommandsInFull,
    help="A multi-domain StyleGAN2 model zoo for unsupervised image-to-image translation.",
    epilog=epilog(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: wrapped to the width, never an option name cut short
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
console = Console(soft_wrap=True)  # lines longer than the terminal are not broken: paths stay whole in a pipe
error_console = Console(stderr=True, soft_wrap=True)
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps."


def new_table(*columns: str, right: tuple[str, ...] = (), **options) -> Table:
    """A table whose cells wrap and fold words longer than their column, so nothing is cut with an ellipsis at any
    width or in a pipe (`--json` gives the same rows unwrapped); `right` names right-aligned columns. Lines only under
    the header and no outer edge: the most room for the cells."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), **options)
    for column in columns:
        table.add_column(column, overflow="fold", justify="right" if column in right else "left")
    return table


def print_json(data) -> None:
    console.print_json(json.dumps(data))


def progress_bar() -> Progress:
    """Progress on stderr, shown only on a terminal (logs and pipes get no bar residue)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=error_console, disable=not error_console.is_terminal,
    )


def version_callback(value: bool):
    if value:
        console.print(f"zoo {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Optional[bool] = typer.Option(None, "--version", callback=version_callback, is_eager=True, help="Print the version."),
):
    """Run `zoo COMMAND --help` for a command's options."""


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


def show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one plain line on stderr, like errors."""
    error_console.print(f"zoo: warning: {message}", markup=False, highlight=False, soft_wrap=True)


def with_options(options: dict, parameter: str, collect):
    """A decorator giving a command a shared group of options (name -> (type, typer option)); the command receives
    them as `collect(values)` in its `parameter` argument, so commands that share options declare them once."""

    def decorate(command):
        signature = inspect.signature(command)
        own = [value for name, value in signature.parameters.items() if name != parameter]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
                 for name, (annotation, option) in options.items()]  # fmt: skip

        @functools.wraps(command)
        def run(**values):
            return command(**{parameter: collect({name: values.pop(name) for name in options})}, **values)

        run.__signature__ = signature.replace(parameters=own + added)
        return run

    return decorate


def setting_options(config_class) -> dict:
    """name -> (type, option) for each field of a settings dataclass declared with a flag (`training.setting`); None
    on the command line leaves the value to the recipe, else the field's default (`training.resolve_config`)."""
    types = typing.get_type_hints(config_class)
    return {item.name: (Optional[setting_type(item, types)], typer.Option(None, item.metadata["flag"], help=item.metadata["help"],
                                                                          **item.metadata["limits"]))
            for item in dataclasses.fields(config_class) if "flag" in item.metadata}  # fmt: skip


def setting_type(item: dataclasses.Field, types: dict) -> type:
    """A setting's option type: an enum of its choices (listed in --help, completed in the shell), else its field's."""
    choices = item.metadata["choices"]
    return choice(item.name.title().replace("_", ""), choices) if choices else types[item.name]


def setting_flag(name: str) -> str:
    """The command-line flag of a TrainConfig field (its declared flag, else --name-with-dashes)."""
    declared = {item.name: item.metadata.get("flag") for item in dataclasses.fields(TrainConfig)}
    return declared.get(name) or f"--{name.replace('_', '-')}"


TRAINING_OPTIONS = {  # name -> (type, option): TrainConfig's settings, then how a run goes
    **setting_options(TrainConfig),
    "keep_discriminator": (bool, typer.Option(True, "--discriminator/--no-discriminator",
                                              help="Keep D in the installed file (needed to fine-tune from it later; doubles its size).")),
    "resume": (bool, typer.Option(False, "--resume", help="Continue the run from its last snapshot.")),
    "force": (bool, typer.Option(False, "--force", help="Replace an installed model of the same name.")),
    "device": (str, typer.Option("auto", "--device", help="auto, cpu, cuda or mps (under torchrun: the local GPU).")),
    "gpus": (int, typer.Option(1, "--gpus", min=1, help="Processes (GPUs) to train with; re-launches under torchrun.")),
    "log": (Optional[LogSink], typer.Option(None, "--log", help="Also log losses, augmentation p and sample grids for "
                                            f"TensorBoard, in RUN_DIR/{TENSORBOARD_DIR} (metrics.jsonl is always written).")),
}
RUN_OPTIONS = ("keep_discriminator", "resume", "force", "device", "gpus", "log")
with_training_options = with_options(TRAINING_OPTIONS, "training", dict)


def run_training(planner, training: dict) -> None:
    """Plan a run with the recipe options, train it and install the result; re-launches itself under torchrun when
    --gpus asks for several processes."""
    run = {name: training.pop(name) for name in RUN_OPTIONS}
    try:
        plan = planner(**training)
    except SettingError as error:  # the library names the TrainConfig field; the user typed its flag
        raise ZooError(f"{setting_flag(error.setting)} {error.problem}") from None
    if run["gpus"] > 1 and "RANK" not in os.environ:
        relaunch_with_torchrun(run["gpus"])
    with training_progress(plan.name) as progress, training_sinks(run["log"], plan.name) as sinks:
        result, entry = train_and_install(
            plan.name, plan.config, plan.data, base=plan.base, model_config=plan.model_config, include=plan.include,
            force=run["force"], family=plan.family, resume=run["resume"], device=None if run["device"] == "auto" else run["device"],
            progress=progress, command=shlex.join(["zoo", *sys.argv[1:]]), keep_discriminator=run["keep_discriminator"],
            data_license=plan.data_license, sinks=sinks,
        )  # fmt: skip
    if entry is not None:
        console.print(
            f"installed [bold]{plan.name}[/] ({entry['resolution']}px, family {entry['family']}) after {result.steps} steps "
            f"in {result.wall_time_seconds / 60:.1f} min -> {entry['file']}; run directory {result.run_dir}"
        )


@contextlib.contextmanager
def training_sinks(log: Optional[LogSink], name: str):
    """The sinks --log asks for, open for the run (on rank 0 only: the other processes write nothing)."""
    if log is None or int(os.environ.get("RANK", "0")) != 0:
        yield []
        return
    with TensorBoardSink(Registry().run_dir(name) / TENSORBOARD_DIR) as sink:
        yield [sink]


def relaunch_with_torchrun(processes: int) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "zoo",
               *without_option(sys.argv[1:], "--gpus")]  # fmt: skip
    os.execv(sys.executable, command)


def without_option(arguments: list[str], option: str) -> list[str]:
    """The command line without `option` and its value (given as `option VALUE` or `option=VALUE`)."""
    kept, skip_value = [], False
    for argument in arguments:
        if skip_value:
            skip_value = False
        elif argument == option:
            skip_value = True
        elif not argument.startswith(option + "="):
            kept.append(argument)
    return kept


@contextlib.contextmanager
def training_progress(name: str):
    """A rich bar on a terminal; otherwise (logs, background runs) a plain line every 100 steps."""
    if error_console.is_terminal:
        with rich_progress(f"training {name}", console=error_console) as update:
            yield update
        return

    def log_line(done: int, total: int, metrics: dict | None) -> None:
        if metrics and (done % 100 == 0 or done == total):
            print(f"{name} step {done}/{total}  {format_metrics(metrics)}", file=sys.stderr, flush=True)

    yield log_line


@app.command("train-base")
@with_training_options
def train_base_command(
    name: str = typer.Argument(..., help="Name of the new base model (a declared domain, e.g. emoji-noto, or your own)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of training images (default: the domain's bundled data)."),
    size: Optional[int] = typer.Option(None, "--size", help="Resolution (default: the domain's)."),
    channels: Optional[str] = typer.Option(None, "--channels", help="Widths per resolution, e.g. 4:256,8:256,16:128,32:64."),
    style_dim: Optional[int] = typer.Option(None, "--style-dim", help="Width of z and w (default: recipe, else 512)."),
    n_mlp: Optional[int] = typer.Option(None, "--n-mlp", help="Mapping layers (default: recipe, else 8)."),
    training: dict = None,
):
    """Train a new base StyleGAN2 from scratch (snapshots in <zoo home>/runs/NAME; --resume continues)."""
    widths = parse_channels(channels) if channels else None
    run_training(partial(plan_train_base, name, data=data, size=size, channels=widths, style_dim=style_dim, n_mlp=n_mlp), training)


@app.command("add-domain")
@with_training_options
def add_domain_command(
    name: str = typer.Argument(..., help="Domain to create (a declared domain such as anime, or your own name)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of the new domain's images (default: bundled data)."),
    base: Optional[str] = typer.Option(None, "--base", help="Installed model to fine-tune (default: the recipe's base)."),
    freeze_d: Optional[int] = typer.Option(None, "--freeze-d", min=0, help="Freeze the first K discriminator blocks (FreezeD)."),
    no_freeze_fc: bool = typer.Option(False, "--no-freeze-fc", help="Also train the mapping network (the paper's FT ablation)."),
    install_as: Optional[str] = typer.Option(None, "--as", help="Install under this name (e.g. an ablation variant of NAME)."),
    training: dict = None,
):
    """Fine-tune a base into a new domain with the mapping network frozen (the paper's F(G_base, D_t))."""
    freeze_fc = False if no_freeze_fc else None  # None: the recipe's (on for every declared domain)
    run_training(partial(plan_add_domain, name, data=data, base=base, install_as=install_as, freeze_fc=freeze_fc,
                         freeze_d=freeze_d), training)  # fmt: skip


@app.command("train-encoder")
def train_encoder_command(
    base: str = typer.Argument(..., help="The installed base model to invert (e.g. emoji-noto)."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the encoder (default: BASE-encoder)."),
    iters: int = typer.Option(4000, "--iters", min=1, help="Training steps."),
    batch: int = typer.Option(32, "--batch", min=1, help="Base samples per step."),
    backbone: str = typer.Option(DEFAULT_BACKBONE, "--backbone", help="timm backbone (created untrained), e.g. resnet10t."),
    snapshot_every: int = typer.Option(500, "--snapshot-every", min=1, help="Steps between snapshots."),
    seed: int = typer.Option(0, "--seed", help="Seed of the run."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its last snapshot."),
    force: bool = typer.Option(False, "--force", help="Replace an installed encoder of the same name."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
):
    """Train an image -> latent encoder on a base model's own samples (snapshots in <zoo home>/runs/NAME)."""
    config = EncoderTrainConfig(iters=iters, batch=batch, snapshot_every=snapshot_every, seed=seed)
    with training_progress(name or f"{base}-encoder") as progress:
        run, entry = train_and_install_encoder(base, name, config, backbone=backbone, resume=resume, force=force,
                                               command=shlex.join(["zoo", *sys.argv[1:]]), device=pick_device(device),
                                               on_step=progress)  # fmt: skip
    console.print(f"installed encoder for {entry['base']} ({entry['backbone']}) after {run.steps} steps in "
                  f"{run.wall_time_seconds / 60:.1f} min -> {entry['file']}")


@app.command("train-translator")
def train_translator_command(
    base: str = typer.Argument(..., help="The installed base model whose translations to distil (e.g. emoji-noto)."),
    to: Optional[str] = typer.Option(None, "--to", help="Target domains, comma-separated (default: every installed family member)."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the translator (default: BASE-translator)."),
    iters: int = typer.Option(5000, "--iters", min=1, help="Training steps."),
    batch: int = typer.Option(32, "--batch", min=1, help="Sampled pairs per step."),
    appearance_layers: int = typer.Option(4, "--appearance-layers", min=1, help="Last W+ rows taking the appearance code in the pairs."),
    snapshot_every: int = typer.Option(250, "--snapshot-every", min=1, help="Steps between snapshots."),
    seed: int = typer.Option(0, "--seed", help="Seed of the run."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its last snapshot."),
    force: bool = typer.Option(False, "--force", help="Replace an installed translator of the same name."),
):
    """Distil a family's layer-swap translations into one feed-forward network (snapshots in <zoo home>/runs/NAME)."""
    config = TranslatorTrainConfig(iters=iters, batch=batch, snapshot_every=snapshot_every, seed=seed)
    targets = to.split(",") if to else None
    with training_progress(name or f"{base}-translator") as progress:
        run, entry = train_and_install_translator(base, targets, name, config, appearance_layers=appearance_layers, resume=resume,
                                                  force=force, command=shlex.join(["zoo", *sys.argv[1:]]), on_step=progress)  # fmt: skip
    console.print(f"installed translator {entry['base']} -> {', '.join(entry['targets'])} after {run.steps} steps in "
                  f"{run.wall_time_seconds / 60:.1f} min -> {entry['file']}")


@app.command("swap")
def swap_command(
    target: str = typer.Argument(..., help="An installed fine-tuned model."),
    name: str = typer.Option(..., "--name", help="Name of the new, layer-swapped model."),
    level: Optional[int] = typer.Option(None, "--level", "-l", min=1, help="The paper's l: 1, 2, 3 = layers up to 8, 16, 32 px."),
    resolutions: Optional[str] = typer.Option(None, "--resolutions", help="Any set of resolutions instead, e.g. 4,8,16."),
    base: Optional[str] = typer.Option(None, "--base", help="Model to take the layers from (default: the target's base)."),
    force: bool = typer.Option(False, "--force", help="Replace an installed model of the same name."),
):
    """Make the paper's S(G', l): the target with its base's low-resolution layers, as a standalone model."""
    if (level is None) == (resolutions is None):
        raise ZooError("give either --level l or --resolutions r1,r2,... (not both)")
    chosen = level_resolutions(level) if level is not None else parse_resolutions(resolutions)
    entry = install_swapped(name, target, base=base, resolutions=chosen, force=force)
    console.print(f"installed [bold]{name}[/]: {target} with {entry['lineage']['base']}'s layers at {chosen} px -> {entry['file']}")


def parse_resolutions(text: str) -> list[int]:
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise ZooError(f"--resolutions {text!r}: give comma-separated resolutions, e.g. 4,8,16") from None


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
    from .serve import serve

    serve(host, port)


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
    swap: Optional[str] = typer.Option(None, "--swap", help="Layer swap level(s) l, comma-separated (0 = none; default: the recipe's)."),
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
    swaps = [None] if swap is None else parse_levels(swap)
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


def parse_levels(text: str) -> list[int]:
    items = [item.strip() for item in text.split(",")]
    if not all(item.isdigit() for item in items):
        raise ZooError(f"--swap {text!r}: give levels 0 (none), 1, 2, ... separated by commas")
    return [int(item) for item in items]


def main() -> None:
    """Run the CLI. A ZooError (a user's mistake) and a failure of the machine (read-only or full disk, a name too long,
    out of memory: `environment_problem`) are one line and exit code 2; anything else is a bug and keeps its traceback.
    Typer turns Ctrl-C into exit code 130."""
    warnings.showwarning = show_warning
    tune_cpu_allocator()
    try:
        register_commands(app)  # third-party plugins' commands (the register_commands hook)
        app()
    except ZooError as error:
        exit_with_error(str(error))
    except Exception as error:
        problem = environment_problem(error)
        if problem is None:
            raise
        exit_with_error(problem)


def exit_with_error(message: str) -> None:
    error_console.print(f"zoo: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(2)
