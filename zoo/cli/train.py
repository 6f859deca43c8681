"""Commands that make models: train-base and add-domain (their options generated from TrainConfig's settings),
train-encoder, train-translator, swap."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import sys
import typing
from functools import partial
from pathlib import Path
from typing import Optional

import typer

from ..choices import LogSink, choice
from ..devices import pick_device
from ..encoder import DEFAULT_BACKBONE, EncoderTrainConfig, train_and_install_encoder
from ..errors import SettingError, ZooError
from ..logging_sinks import TENSORBOARD_DIR, TensorBoardSink
from ..progress import format_metrics, rich_progress
from ..recipes import parse_channels, plan_add_domain, plan_train_base
from ..registry import Registry
from ..swap import install_swapped, level_resolutions
from ..training import TrainConfig, train_and_install
from ..translator import TranslatorTrainConfig, train_and_install_translator
from .base import app, console, error_console, with_options


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


