"""registry.toml and the checkpoints under injected failures: a write that fails midway, a commit that fails after the
checkpoint was written, a lock held past its timeout. Whatever fails, the registry and every checkpoint stay as they
were and every installed model still loads (its sha256 checked).

Failures are injected at the operating-system boundary (fsync and rename of a named file), not in zoo's internals,
so these tests hold for any implementation that writes atomically."""

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from zoo import registry as registry_module
from zoo.errors import ZooError
from zoo.model import Generator, ModelConfig
from zoo.registry import install_model, load

CONFIG = ModelConfig(size=8, style_dim=8, n_mlp=1, channels={4: 8, 8: 8})


def make_generator(seed):
    torch.manual_seed(seed)
    return Generator(CONFIG)


def snapshot(home: Path) -> dict[str, bytes]:
    """Every file in the zoo home (lock files aside) -> its bytes."""
    return {str(path.relative_to(home)): path.read_bytes() for path in sorted(home.rglob("*"))
            if path.is_file() and not path.name.endswith(".lock")}  # fmt: skip


def path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.fixture
def installed(zoo_home):
    install_model("alpha", make_generator(0), family="alpha", lineage={})
    install_model("beta", make_generator(1), family="beta", lineage={})
    return snapshot(zoo_home)


def fail_fsync_of(monkeypatch, fragment: str):
    """fsync of any file whose path contains `fragment` fails as a full or failing disk would, after its data
    was written: the write raises midway through the atomic write."""
    real_fsync = os.fsync

    def fsync(fd):
        if fragment in path_of(fd):
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def fail_rename_onto(monkeypatch, name: str):
    """Renaming a file onto `name` (the commit of an atomic write) fails."""
    real_replace, real_rename = os.replace, os.rename

    def guarded(real):
        def rename(source, destination, *args, **kwargs):
            if Path(destination).name == name:
                raise OSError(errno.EIO, "Input/output error (injected)")
            return real(source, destination, *args, **kwargs)

        return rename

    monkeypatch.setattr(os, "replace", guarded(real_replace))
    monkeypatch.setattr(os, "rename", guarded(real_rename))


def assert_unchanged(home: Path, before: dict[str, bytes]):
    assert snapshot(home) == before
    for name in ("alpha", "beta"):
        load(name)


REGISTRY_FAILURES = {
    "write-fails-midway": lambda patch: fail_fsync_of(patch, "registry.toml"),
    "commit-fails-after-the-checkpoint-was-written": lambda patch: fail_rename_onto(patch, "registry.toml"),
}


@pytest.mark.parametrize("failure", list(REGISTRY_FAILURES))
@pytest.mark.parametrize("force", [False, True], ids=["new-model", "force-replace"])
def test_a_failing_registry_write_changes_nothing(zoo_home, installed, monkeypatch, failure, force):
    with monkeypatch.context() as patch, pytest.raises((OSError, ZooError)):
        REGISTRY_FAILURES[failure](patch)
        install_model("alpha" if force else "gamma", make_generator(2), family="alpha", lineage={}, force=force)
    assert_unchanged(zoo_home, installed)


def test_checkpoint_write_failing_midway_changes_nothing(zoo_home, installed, monkeypatch):
    with monkeypatch.context() as patch, pytest.raises((OSError, ZooError)):
        fail_fsync_of(patch, "alpha.safetensors")
        install_model("alpha", make_generator(2), family="alpha", lineage={}, force=True)
    assert_unchanged(zoo_home, installed)


def test_a_lock_held_past_the_timeout_is_refused_and_changes_nothing(zoo_home, installed, monkeypatch):
    lock = zoo_home / "registry.toml.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import filelock, sys, time\nlock = filelock.FileLock(sys.argv[1])\nlock.acquire()\nprint('held', flush=True)\n"
         "time.sleep(60)", str(lock)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with monkeypatch.context() as patch, pytest.raises(ZooError, match="locked by another zoo command"):
            patch.setattr(registry_module, "LOCK_TIMEOUT_SECONDS", 0.5)
            install_model("alpha", make_generator(2), family="alpha", lineage={}, force=True)
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()
    assert_unchanged(zoo_home, installed)
    install_model("gamma", make_generator(2), family="gamma", lineage={})  # the lock is free again once its holder is gone
    assert load("gamma").info.domain == "gamma"
