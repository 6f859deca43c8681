"""`zoo train-base` and `zoo add-domain` as users run them, and how recipes fill in what the user leaves out."""

import json
import os
import subprocess
import sys
import tomllib

import pytest
import torch
from zoo_plugins.emoji import BASE_ARCHITECTURE, RESOLUTION

from zoo.checkpoint import load_model
from zoo.cli import without_option
from zoo.errors import ZooError
from zoo.recipes import parse_channels, plan_add_domain, plan_train_base

TINY = ["--size", "16", "--channels", "4:16,8:12,16:8", "--style-dim", "16", "--n-mlp", "2"]
FAST = ["--batch", "4", "--snapshot-every", "2", "--sample-every", "2"]


def zoo(*args):
    result = subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"}, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def test_train_base_then_add_domain_keeps_the_family(images, zoo_home):
    trained = zoo("train-base", "mybase", "--data", images, *TINY, *FAST, "--iters", "4", "--augment", "ada", "--precision", "float32")
    assert "installed mybase (16px, family mybase) after 4 steps" in trained.stdout
    assert "mybase step 4/4" in trained.stderr
    zoo("add-domain", "mine", "--base", "mybase", "--data", images, *FAST, "--iters", "2", "--freeze-d", "1")
    domains = tomllib.loads((zoo_home / "registry.toml").read_text())["domains"]
    base, tuned = domains["mybase"], domains["mine"]
    assert tuned["family"] == "mybase" and tuned["mapping_sha256"] == base["mapping_sha256"]
    assert tuned["lineage"]["transform"] == "fine-tune" and tuned["lineage"]["base_sha256"] == base["sha256"]
    assert tuned["lineage"]["recipe"]["freeze_fc"] is True and tuned["lineage"]["recipe"]["freeze_d"] == 1
    assert (base["lineage"]["recipe"]["augment"], base["lineage"]["recipe"]["precision"]) == ("ada", "float32")
    assert tuned["lineage"]["command"].startswith("zoo add-domain mine --base mybase")
    base_model, tuned_model = load_model(zoo_home / base["file"]), load_model(zoo_home / tuned["file"])
    assert all(torch.equal(a, b) for a, b in zip(base_model.generator.style.parameters(), tuned_model.generator.style.parameters()))
    assert not torch.equal(base_model.generator.conv1.conv.weight, tuned_model.generator.conv1.conv.weight)
    assert [json.loads(line)["step"] for line in (zoo_home / "runs" / "mine" / "metrics.jsonl").read_text().splitlines()][-1] == 2

    unfrozen = zoo("add-domain", "mine", "--as", "mine-ft", "--base", "mybase", "--data", images, *FAST, "--iters", "2",
                   "--no-freeze-fc", "--no-discriminator")  # fmt: skip
    assert "installed mine-ft (16px, family mine-ft)" in unfrozen.stdout
    assert (zoo_home / "runs" / "mine-ft" / "snapshot.pt").is_file()
    assert load_model(zoo_home / "checkpoints" / "mine-ft.safetensors").info.has_discriminator is False
    assert base_model.info.has_discriminator is True


def test_recipes_fill_in_declared_domains(images):
    plan = plan_train_base("emoji-noto", iters=5)
    assert (plan.model_config.size, plan.model_config.style_dim) == (RESOLUTION, BASE_ARCHITECTURE["style_dim"])
    assert plan.model_config.channels == BASE_ARCHITECTURE["channels"]
    assert plan.data.name == "noto" and plan.config.iters == 5 and plan.config.freeze_fc is False
    assert plan.family == "emoji" and plan_train_base("my-own", data=images, size=16).family is None
    assert plan.data_license.startswith("Apache-2.0; attribution in ") and plan_train_base("emoji-noto", data=images).data_license is None
    with pytest.raises(ZooError, match="use `zoo add-domain anime`"):
        plan_train_base("anime")
    with pytest.raises(ZooError, match="--size is needed"):
        plan_train_base("my-own", data=images)
    with pytest.raises(ZooError, match="--data DIR is needed: 'anime' ships no images"):
        plan_add_domain("anime")
    with pytest.raises(ZooError, match="base model 'face' is not installed; install it first with `zoo pull face`"):
        plan_add_domain("anime", data=images)
    with pytest.raises(ZooError, match="--base is needed"):
        plan_add_domain("my-own", data=images)
    assert parse_channels("4:8,8:4") == {4: 8, 8: 4}
    with pytest.raises(ZooError, match="resolution:width"):
        parse_channels("4=8")


def test_swap_command_installs_a_standalone_layer_swapped_model(images, zoo_home):
    zoo("train-base", "mybase", "--data", images, *TINY, *FAST, "--iters", "2")
    zoo("add-domain", "mine", "--base", "mybase", "--data", images, *FAST, "--iters", "2")
    swapped = zoo("swap", "mine", "--level", "1", "--name", "mine-ls1")
    assert "with mybase's layers at [4, 8] px" in swapped.stdout
    entry = tomllib.loads((zoo_home / "registry.toml").read_text())["domains"]["mine-ls1"]
    assert entry["family"] == "mybase" and entry["lineage"]["swap"] == {"resolutions": [4, 8], "level": 1}
    base, tuned, result = (load_model(zoo_home / "checkpoints" / f"{n}.safetensors").generator for n in ("mybase", "mine", "mine-ls1"))
    assert torch.equal(result.conv1.conv.weight, base.conv1.conv.weight)
    assert torch.equal(result.convs[2].conv.weight, tuned.convs[2].conv.weight)
    assert torch.equal(result.to_rgb1.conv.weight, tuned.to_rgb1.conv.weight)


def test_gpus_relaunch_drops_only_the_gpus_option():
    given = ["add-domain", "x", "--data", "d", "--gpus", "2", "--iters", "100", "--gpus=4", "--seed", "3"]
    assert without_option(given, "--gpus") == ["add-domain", "x", "--data", "d", "--iters", "100", "--seed", "3"]
