import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from zoo.checkpoint import load_model, mapping_sha256
from zoo.errors import ZooError
from zoo.model import Discriminator, Generator
from zoo.progress import rich_progress
from zoo.registry import Registry, install_model
from zoo.training import (
    SNAPSHOT_FILE,
    TrainConfig,
    ema_decay,
    freeze,
    frozen_discriminator_prefixes,
    load_base,
    load_snapshot,
    make_optimizers,
    train,
    train_and_install,
)

REPO = Path(__file__).resolve().parent.parent


def recipe(**overrides) -> TrainConfig:
    """A few cheap steps with both regularisers (at even steps) and ADA moving p by 0.25 every 2 steps."""
    settings = dict(iters=4, batch=4, d_reg_every=2, g_reg_every=2, augment="ada", ada_target=-2.0, ada_interval=2,
                    ada_kimg=0.032, log_every=1, snapshot_every=100, sample_every=100, seed=3)  # fmt: skip
    return TrainConfig(**{**settings, **overrides})


@pytest.fixture
def base(tiny_config):
    """An installed base model (random weights) with its discriminator."""
    torch.manual_seed(11)
    generator, discriminator = Generator(tiny_config), Discriminator(tiny_config)
    generator.truncation_center()
    install_model("base", generator, family="faces", lineage={}, discriminator=discriminator)
    return load_base("base")


def assert_same_state(left, right, where=""):
    """Equal nested dicts/lists of tensors and numbers, tensors bit for bit."""
    if isinstance(left, torch.Tensor):
        assert torch.equal(left, right), where
    elif isinstance(left, dict):
        assert left.keys() == right.keys(), where
        for key in left:
            assert_same_state(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, (list, tuple)):
        assert len(left) == len(right), where
        for index, (a, b) in enumerate(zip(left, right)):
            assert_same_state(a, b, f"{where}[{index}]")
    else:
        assert left == right, where


def test_train_from_scratch(images, tmp_path, tiny_config):
    run_dir = tmp_path / "run"
    torch.manual_seed(3)  # the run's seed: the initial weights it starts from
    initial_g, initial_d = Generator(tiny_config), Discriminator(tiny_config)
    result = train(recipe(snapshot_every=2, sample_every=2), images, run_dir, model_config=tiny_config)

    assert result.steps == 4 and result.augment == {"mode": "ada", "p": 0.5}
    assert result.data == {"root": str(images.resolve()), "images": 12, "skipped": 0}
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == [1, 2, 3, 4]
    for record in records:
        for key in ("d_loss", "g_loss", "r1", "path_length", "path_penalty", "real_score", "fake_score", "sec_per_it"):
            assert math.isfinite(record[key]), key
        assert 0 < record["d_loss"] < 5 and 0 < record["g_loss"] < 10
    assert [record["augment_p"] for record in records] == [0.0, 0.25, 0.25, 0.5]
    assert sorted(path.name for path in (run_dir / "samples").iterdir()) == ["000002.png", "000004.png"]
    assert Image.open(run_dir / "samples" / "000004.png").size == (4 * 18 + 2, 4 * 18 + 2)  # 4x4 grid of 16 px

    state = torch.load(run_dir / SNAPSHOT_FILE, weights_only=True)  # plain data: loads without pickle code
    assert state["trainer"]["step"] == 4 and state["augment_mode"] == "ada"
    trained_g, trained_d = dict(result.generator.named_parameters()), dict(result.discriminator.named_parameters())
    assert all(not torch.equal(value, trained_g[name]) for name, value in initial_g.named_parameters())
    assert all(not torch.equal(value, trained_d[name]) for name, value in initial_d.named_parameters())
    assert all(torch.equal(value, result.generator.get_buffer(name)) for name, value in initial_g.named_buffers())


def test_bfloat16_training_tracks_float32(images, tmp_path, tiny_config):
    """The same short run in both precisions: the losses agree closely and the trained weights barely differ."""
    torch.manual_seed(3)  # the runs' seed: the initial weights they start from
    initial = dict(Generator(tiny_config).named_parameters())
    runs = {}
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(3)
        runs[precision] = train(recipe(precision=precision), images, tmp_path / precision, model_config=tiny_config)
        assert runs[precision].precision == precision
    for key in ("d_loss", "g_loss", "r1", "path_length"):
        assert runs["bfloat16"].metrics[key] == pytest.approx(runs["float32"].metrics[key], rel=0.05, abs=0.02), key
    trained = {precision: dict(result.generator.named_parameters()) for precision, result in runs.items()}
    rounding = sum((trained["bfloat16"][name] - weight).abs().sum() for name, weight in trained["float32"].items())
    training = sum((weight - initial[name]).abs().sum() for name, weight in trained["float32"].items())
    assert 0 < rounding < 0.2 * training  # measured: 4% of how far the weights moved


def test_config_json_round_trip_and_checks():
    config = recipe(freeze_d=2, betas=[0.1, 0.9])
    data = json.loads(json.dumps(config.to_dict()))
    assert TrainConfig.from_dict(data) == config and config.betas == (0.1, 0.9)
    assert config.augment_mode(4999) == "ada" and TrainConfig().augment_mode(5000) == "off"
    with pytest.raises(ZooError, match="^augment 'sometimes'"):
        TrainConfig(augment="sometimes")
    with pytest.raises(ZooError, match="^batch must be at least 1"):
        TrainConfig(batch=0)
    with pytest.raises(ZooError, match="--precision 'half'"):
        TrainConfig(precision="half")


def test_lazy_regularisation_corrects_adam_and_ema_scales_with_batch(tiny_config):
    g_opt, d_opt = make_optimizers(Generator(tiny_config), Discriminator(tiny_config), TrainConfig())
    assert g_opt.param_groups[0]["lr"] == pytest.approx(0.002 * 4 / 5)
    assert g_opt.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)))
    assert d_opt.param_groups[0]["lr"] == pytest.approx(0.002 * 16 / 17)
    assert d_opt.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    no_path = make_optimizers(Generator(tiny_config), Discriminator(tiny_config), TrainConfig(path_regularize=0))[0]
    assert no_path.param_groups[0]["lr"] == 0.002  # no lazy G regulariser: nothing to correct

    rosinality = 0.5 ** (32 / (10 * 1000))
    assert ema_decay(TrainConfig(batch=32, ema_rampup=0), 0) == pytest.approx(rosinality)
    assert ema_decay(TrainConfig(batch=64, ema_rampup=0), 0) == pytest.approx(rosinality**2)  # same per image
    assert ema_decay(TrainConfig(batch=32), 0) == 0.0  # ramp-up: G_ema starts as G
    assert ema_decay(TrainConfig(batch=32), 10**9) == pytest.approx(rosinality)


def test_freeze_fc_keeps_the_base_mapping_bit_identical(images, tmp_path, base):
    base_state = base.generator.state_dict()
    base_mapping = {name: value for name, value in base_state.items() if name.startswith("style.")}
    result = train(recipe(freeze_fc=True), images, tmp_path / "run", base=base)

    trained = load_snapshot(tmp_path / "run")["trainer"]
    for state in (trained["generator"], trained["generator_ema"], result.generator.state_dict()):
        for name, value in base_mapping.items():
            assert torch.equal(state[name], value), name
        assert mapping_sha256(state) == base.info.mapping_sha256
        assert not torch.equal(state["convs.0.conv.weight"], base_state["convs.0.conv.weight"])  # the rest trains
    assert torch.equal(result.generator.latent_avg, base.generator.latent_avg)  # the same W, the same centre

    entry = train_and_install("toon", recipe(freeze_fc=True), images, base=base, run_dir=tmp_path / "run2")[1]
    assert entry["family"] == "faces" and entry["mapping_sha256"] == base.info.mapping_sha256
    assert entry["lineage"]["transform"] == "fine-tune" and entry["lineage"]["base"] == "base"
    assert entry["lineage"]["base_sha256"] == Registry().get("base")["sha256"]

    # Control: without FreezeFC the same run does change the mapping.
    unfrozen = train(recipe(), images, tmp_path / "run3", base=base)
    assert mapping_sha256(unfrozen.generator.state_dict()) != base.info.mapping_sha256


def test_freeze_d_freezes_the_blocks_nearest_the_input(images, tmp_path, base):
    result = train(recipe(freeze_d=1), images, tmp_path / "run", base=base)
    before, after = base.discriminator.state_dict(), result.discriminator.state_dict()
    for name in before:
        if name.endswith("kernel"):
            continue
        frozen = name.startswith(("convs.0.", "convs.1."))  # FromRGB and the 16 px block
        assert torch.equal(before[name], after[name]) == frozen, name

    discriminator = Discriminator(base.info.config)
    frozen = freeze(discriminator, frozen_discriminator_prefixes(discriminator, 2))
    assert {name.split(".")[1] for name in frozen} == {"0", "1", "2"}
    optimized = {id(param) for group in make_optimizers(Generator(base.info.config), discriminator, recipe())[1]
                 .param_groups for param in group["params"]}  # fmt: skip
    assert optimized == {id(param) for param in discriminator.parameters() if param.requires_grad} != set()
    assert all(id(discriminator.get_parameter(name)) not in optimized for name in frozen)
    with pytest.raises(ZooError, match="--freeze-d 3: the 16 px discriminator has 2 blocks"):
        frozen_discriminator_prefixes(discriminator, 3)


def test_base_without_discriminator_warns_and_starts_d_fresh(images, tmp_path, tiny_config):
    install_model("nod", Generator(tiny_config), family="nod", lineage={})
    with pytest.warns(UserWarning, match="no discriminator; D starts from random weights"):
        result = train(recipe(iters=1), images, tmp_path / "run", base=load_base("nod"))
    assert result.steps == 1


def test_resume_and_interruptions_match_an_uninterrupted_run(images, tmp_path, tiny_config):
    config = recipe(iters=6, ada_interval=2, snapshot_every=2)
    train(config, images, tmp_path / "straight", model_config=tiny_config)
    reference = load_snapshot(tmp_path / "straight")

    def crash_at_step_3(done, total, metrics):
        if done == 3:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):  # after step 3 was logged; the snapshot is at step 2
        train(config, images, tmp_path / "crashed", model_config=tiny_config, progress=crash_at_step_3)
    assert load_snapshot(tmp_path / "crashed")["trainer"]["step"] == 2
    with pytest.raises(ZooError, match="a run is already there; pass --resume"):
        train(config, images, tmp_path / "crashed", model_config=tiny_config)
    train(config, images, tmp_path / "crashed", model_config=tiny_config, resume=True)

    def ctrl_c_at_step_2(done, total, metrics):
        if done == 2:
            os.kill(os.getpid(), signal.SIGINT)  # honoured after the next step

    with pytest.raises(KeyboardInterrupt):
        train(config, images, tmp_path / "interrupted", model_config=tiny_config, progress=ctrl_c_at_step_2)
    interrupted = load_snapshot(tmp_path / "interrupted")
    assert interrupted["trainer"]["step"] == 3 and interrupted["trainer"]["augment"]["steps_observed"] == 3
    train(config, images, tmp_path / "interrupted", model_config=tiny_config, resume=True)

    for run in ("crashed", "interrupted"):
        resumed = load_snapshot(tmp_path / run)
        assert_same_state(resumed["trainer"], reference["trainer"], run)
        steps = [json.loads(line)["step"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        assert steps == [1, 2, 3, 4, 5, 6]  # no step logged twice
    with pytest.raises(ZooError, match=r"settings differ from the snapshot's \(batch 4 -> 2\)"):
        train(recipe(iters=6, batch=2), images, tmp_path / "crashed", model_config=tiny_config, resume=True)


def test_a_run_resumes_on_the_same_images_with_new_mtimes_but_not_on_changed_images(images, tmp_path, tiny_config):
    """A fresh clone gives the same files new modification times: the resume check compares the decoded pixels."""
    train(recipe(iters=2, snapshot_every=2), images, tmp_path / "run", model_config=tiny_config)
    for path in images.iterdir():
        os.utime(path, ns=(1, 1))
    train(recipe(iters=3, snapshot_every=1), images, tmp_path / "run", model_config=tiny_config, resume=True)
    assert load_snapshot(tmp_path / "run")["trainer"]["step"] == 3
    Image.fromarray(np.zeros((20, 24, 3), dtype=np.uint8)).save(images / "00.png")
    with pytest.raises(ZooError, match="changed since the snapshot; restore them"):
        train(recipe(iters=4), images, tmp_path / "run", model_config=tiny_config, resume=True)


def test_a_failed_snapshot_write_leaves_the_previous_one(images, tmp_path, tiny_config, monkeypatch):
    run_dir = tmp_path / "run"
    real_save = torch.save
    calls = []

    def failing_save(obj, path):
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"PK\x03\x04 half a zip")
            raise OSError("No space left on device")
        real_save(obj, path)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        train(recipe(snapshot_every=2), images, run_dir, model_config=tiny_config)
    assert load_snapshot(run_dir)["trainer"]["step"] == 2
    assert sorted(path.name for path in run_dir.iterdir()) == ["data", "metrics.jsonl", SNAPSHOT_FILE]  # no temp file


KILLED_DURING_SNAPSHOT = """
import os, signal, sys, torch
from zoo.model import ModelConfig
from zoo.training import TrainConfig, train
real_save = torch.save
def save_then_die(obj, path):
    if obj["trainer"]["step"] == 4:
        with open(path, "wb") as handle:
            handle.write(b"PK half a snapshot")
        os.kill(os.getpid(), signal.SIGKILL)
    real_save(obj, path)
torch.save = save_then_die
config = TrainConfig(iters=4, batch=4, snapshot_every=2, sample_every=100, seed=3)
model = ModelConfig(size=16, style_dim=16, n_mlp=2, channels={4: 16, 8: 12, 16: 8})
train(config, sys.argv[1], sys.argv[2], model_config=model)
"""


def test_kill_9_during_a_snapshot_leaves_the_previous_one(images, tmp_path, zoo_home, tiny_config):
    run_dir = tmp_path / "run"
    environment = {**os.environ, "PYTHONPATH": str(REPO), "ZOO_HOME": str(zoo_home)}
    killed = subprocess.run([sys.executable, "-c", KILLED_DURING_SNAPSHOT, str(images), str(run_dir)], env=environment)
    assert killed.returncode == -signal.SIGKILL
    assert load_snapshot(run_dir)["trainer"]["step"] == 2
    assert len(list(run_dir.glob(f".{SNAPSHOT_FILE}.*.tmp"))) == 1  # the half-written file, beside the old one

    config = TrainConfig(iters=4, batch=4, snapshot_every=2, sample_every=100, seed=3)
    assert train(config, images, run_dir, model_config=tiny_config, resume=True).steps == 4
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".*.tmp"))  # the leftover is cleared


def test_install_refuses_an_existing_model_before_training(images, tmp_path, zoo_home, tiny_config):
    config = recipe(iters=2)
    started = time.perf_counter()
    result, entry = train_and_install("new", config, images, model_config=tiny_config, command="zoo train-base")
    elapsed = time.perf_counter() - started
    lineage = entry["lineage"]
    assert entry["family"] == "new" and lineage["transform"] == "train-base" and "base" not in lineage
    assert lineage["iterations"] == 2 and lineage["recipe"] == config.to_dict()
    assert lineage["data"] == {"root": str(images.resolve()), "images": 12, "skipped": 0}
    assert lineage["command"] == "zoo train-base" and 0 < result.wall_time_seconds <= elapsed
    assert lineage["wall_time_seconds"] == round(result.wall_time_seconds, 1)
    loaded = load_model(zoo_home / entry["file"], with_discriminator=True)
    assert_same_state(loaded.generator.state_dict(), result.generator.state_dict())
    assert_same_state(loaded.discriminator.state_dict(), result.discriminator.state_dict())

    with pytest.raises(ZooError, match="model 'new' already exists"):
        train_and_install("new", config, images, model_config=tiny_config, run_dir=tmp_path / "second")
    assert not (tmp_path / "second").exists()  # refused before any training
    with pytest.raises(ZooError, match="family 'new' \\(new\\) shares a mapping network"):
        train_and_install("other", config, images, model_config=tiny_config, family="new", run_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_rich_progress_shows_steps_speed_and_losses(images, tmp_path, tiny_config):
    output = io.StringIO()
    with rich_progress(console=Console(file=output, width=150, force_terminal=False)) as progress:
        train(recipe(iters=3), images, tmp_path / "run", model_config=tiny_config, progress=progress)
    final = output.getvalue().strip().splitlines()[-1]
    assert "3/3" in final and "it/s" in final and "D " in final and "G " in final and "p 0.25" in final


def test_progress_line_names_every_kind_of_runs_losses():
    from zoo.progress import format_metrics

    assert format_metrics({"d_loss": 0.5, "g_loss": 1.25, "augment_p": 0.1}) == "D 0.5  G 1.25  p 0.1"
    assert format_metrics({"loss": 0.9, "latent": 0.6, "image": 0.25, "offset": 0.05}) == \
        "loss 0.9  latent 0.6  image 0.25  offset 0.05"
    assert format_metrics({"loss": 0.5, "l1": 0.125, "ssim": 0.375}) == "loss 0.5  L1 0.125  1-SSIM 0.375"


def test_a_snapshot_that_is_not_a_dict_is_refused_in_one_line(tmp_path):
    torch.save([1, 2, 3], tmp_path / SNAPSHOT_FILE)
    with pytest.raises(ZooError, match="snapshot format list is not 1; start a new run"):
        load_snapshot(tmp_path)


def test_one_resolver_command_line_else_recipe_else_default():
    from zoo.specs import Recipe
    from zoo.training import resolve_config

    recipe = Recipe(base="face", iters=7, batch=4, r1_gamma=1.0)
    config = resolve_config({"iters": None, "r1_gamma": 0.5, "path_regularize": None}, recipe)
    assert (config.iters, config.batch, config.r1_gamma) == (7, 4, 0.5)   # recipe, recipe, command line
    assert (config.path_regularize, config.lr) == (2.0, recipe.lr)        # default (no such recipe field), recipe
    assert resolve_config({"iters": 3}).iters == 3 and resolve_config({}).iters == 10_000
    with pytest.raises(TypeError, match="unknown training option"):
        resolve_config({"itres": 3})


def test_every_flagged_setting_is_a_training_command_option():
    from dataclasses import fields

    from typer.testing import CliRunner

    from zoo.cli import app

    flags = [item.metadata["flag"] for item in fields(TrainConfig) if "flag" in item.metadata]
    assert len(flags) == 10
    for command in ("train-base", "add-domain"):
        help_text = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "300"}).output
        assert all(flag in help_text for flag in flags), command


def test_the_cli_names_the_flag_of_a_refused_setting():
    from typer.testing import CliRunner

    from zoo.cli import app, setting_flag
    from zoo.cli.train import RUN_OPTIONS, run_training

    refused = CliRunner().invoke(app, ["train-base", "mine", "--size", "16", "--augment", "sometimes"])
    assert refused.exit_code == 2 and "'sometimes' is not one of 'auto', 'ada', 'diffaug', 'off'" in refused.output
    with pytest.raises(ZooError) as error:  # what the library refuses reaches the user under the flag's name
        run_training(lambda **options: TrainConfig(**options), {"r1_gamma": 1.0, "augment": "sometimes", **dict.fromkeys(RUN_OPTIONS)})
    assert type(error.value) is ZooError and str(error.value) == "--augment 'sometimes': use one of auto, ada, diffaug, off"
    assert (setting_flag("r1_gamma"), setting_flag("freeze_d"), setting_flag("batch")) == ("--r1", "--freeze-d", "--batch")