"""The run loop the companion networks share (zoo/companion_training.py), on a toy network."""

import pytest
import torch
from torch import nn

from zoo.companion_training import CompanionTraining, train_companion
from zoo.encoder import EncoderTrainConfig
from zoo.errors import ZooError


def toy(base, kind="toy", **settings):
    """A small network with dropout: besides its (seed, step) batch, each step draws a mask from the global RNG. Its
    settings are an encoder's (any RunSettings will do; the loss weights go unused)."""

    def losses(network, step):
        inputs = torch.randn(4, 8, generator=torch.Generator().manual_seed(step))
        return {"loss": network(inputs).square().mean()}

    config = EncoderTrainConfig(**{"iters": 6, "lr": 1e-2, "snapshot_every": 3, **settings})
    return CompanionTraining(kind=kind, base=base, config=config, losses=losses, identity={}, identity_words="base or settings",
                             build=lambda: nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.Linear(8, 1)))  # fmt: skip


def killed_after_step_4(step, total, metrics):
    if step == 4:
        raise KeyboardInterrupt


def test_a_run_killed_between_snapshots_resumes_to_what_an_unbroken_one_computes(model):
    unbroken = train_companion("whole", toy(model))
    with pytest.raises(KeyboardInterrupt):
        train_companion("parts", toy(model), on_step=killed_after_step_4)
    callers_rng = torch.get_rng_state()
    resumed = train_companion("parts", toy(model), resume=True)
    assert torch.equal(torch.get_rng_state(), callers_rng)  # the run drew from its own generator
    assert resumed.steps == 6 and resumed.metrics == unbroken.metrics
    for a, b in zip(unbroken.network.state_dict().values(), resumed.network.state_dict().values()):
        assert torch.equal(a, b)
    different_seed = train_companion("seed-1", toy(model, seed=1))
    assert different_seed.metrics != unbroken.metrics


def test_settings_and_snapshots_are_checked_and_a_killed_write_is_cleared(model, zoo_home):
    with pytest.raises(ZooError, match="--iters, --batch and --snapshot-every must be at least 1"):
        EncoderTrainConfig(iters=0)
    train_companion("run", toy(model, iters=3))
    with pytest.raises(ZooError, match="a run of this name exists; pass --resume"):
        train_companion("run", toy(model, iters=3))
    with pytest.raises(ZooError, match="made with another base or settings; resume with those"):
        train_companion("run", toy(model, lr=0.5), resume=True)
    with pytest.raises(ZooError, match="not a translator run's snapshot"):
        train_companion("run", toy(model, kind="translator"), resume=True)
    (zoo_home / "runs" / "run" / "snapshot.pt").write_bytes(b"damaged")
    with pytest.raises(ZooError, match="unreadable snapshot"):
        train_companion("run", toy(model), resume=True)
    (zoo_home / "runs" / "run" / "snapshot.pt").unlink()
    (zoo_home / "runs" / "run" / ".snapshot.pt.1a2b.tmp").write_bytes(b"half")  # what a kill mid-write leaves
    assert train_companion("run", toy(model, iters=4), resume=True).steps == 4
    assert sorted(path.name for path in (zoo_home / "runs" / "run").iterdir()) == ["snapshot.pt"]
