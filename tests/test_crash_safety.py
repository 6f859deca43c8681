"""`kill -9` at random moments of `zoo import`, `zoo add-domain` and `zoo swap` never leaves a zoo that blocks a re-run.

After each kill: registry.toml parses and validates; a re-run (add-domain with --resume) completes, or finds the model
installed because the killed command had got that far (the next locked command completes an install whose checkpoint
was already in place); no temporary file, journal or unregistered checkpoint is left.
"""

import copy
import os
import random
import subprocess
import sys
import time
import tomllib

import pytest
import torch

from zoo.checkpoint import save_model
from zoo.model import Discriminator, Generator
from zoo.registry import Registry, install_model, load

SEED = 16
FAST = ["--batch", "4", "--snapshot-every", "2", "--sample-every", "2", "--iters", "4"]


@pytest.fixture
def commands(zoo_home, tmp_path, tiny_config, images):
    """name -> the command installing it, in a zoo holding a base and a model fine-tuned from it."""
    torch.manual_seed(0)
    base = Generator(tiny_config)
    install_model("kbase", base, family="kbase", lineage={}, discriminator=Discriminator(tiny_config))
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        tuned.convs[0].conv.weight.add_(0.1)
    install_model("ktuned", tuned, family="kbase", lineage={"base": "kbase"})
    source = tmp_path / "source.safetensors"
    save_model(source, tuned, domain="source", family="source", lineage={})
    return {
        "imp": ["import", source, "--name", "imp"],
        "dom": ["add-domain", "dom", "--base", "kbase", "--data", images, *FAST],
        "swp": ["swap", "ktuned", "--level", "1", "--name", "swp"],
    }


def start(command):
    return subprocess.Popen([sys.executable, "-m", "zoo", *map(str, command)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})  # fmt: skip


def run(command):
    process = start(command)
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


def leftovers(home):
    return sorted(path.name for folder in (home, home / "checkpoints")
                  for path in folder.iterdir() if path.name.endswith((".tmp", ".journal")))  # fmt: skip


def kill_and_rerun(rounds, commands, zoo_home):
    """Kill each command after a seeded random delay (up to about its full duration), check the zoo, re-run, clean up."""
    durations = dict.fromkeys(commands, 8.0)  # seconds; then each command's last re-run on this machine
    rng = random.Random(SEED)
    outcomes = []
    for index in range(rounds):
        name = list(commands)[index % len(commands)]
        process = start(commands[name])
        time.sleep(rng.uniform(0.05, 1.1) * durations[name])
        process.kill()
        process.communicate()
        outcomes.append("finished" if process.returncode == 0 else "killed")
        tomllib.loads((zoo_home / "registry.toml").read_text())
        Registry().domains()  # validates every entry
        started = time.monotonic()
        code, stderr = run(commands[name] + (["--resume"] if name == "dom" else []))
        assert code == 0 or (code == 2 and "already exists" in stderr), stderr
        durations[name] = time.monotonic() - started
        assert load(name).info.domain == name  # installed, its sha256 verified against registry.toml
        assert leftovers(zoo_home) == [] and Registry().unregistered_files() == []
        Registry().remove(name)
    return outcomes


def test_random_kills_leave_a_zoo_that_re_runs(commands, zoo_home):
    outcomes = kill_and_rerun(3, commands, zoo_home)
    assert len(outcomes) == 3


@pytest.mark.slow
def test_twenty_random_kills_leave_a_zoo_that_re_runs(commands, zoo_home):
    outcomes = kill_and_rerun(20, commands, zoo_home)
    assert outcomes.count("killed") >= 10  # the delays mostly land inside the runs
