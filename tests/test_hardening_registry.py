"""Hostile or damaged registries, interrupted installs, full and read-only disks, names, modes and `zoo remove`."""

import errno
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib

import pytest
import torch

from zoo.checkpoint import load_model, save_model
from zoo.domains import describe, domain_status
from zoo.errors import ZooError
from zoo.files import atomic_path
from zoo.model import Generator, ModelConfig
from zoo.registry import MAX_NAME_LENGTH, Registry, check_name, install_model, load

CONFIG = dict(size=8, style_dim=8, n_mlp=1, channels={4: 8, 8: 8})


def make_generator(seed=0, **config):
    torch.manual_seed(seed)
    return Generator(ModelConfig(**{**CONFIG, **config}))


def zoo(*args, input=None):
    return subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], capture_output=True, text=True, input=input,
                          env={**os.environ, "COLUMNS": "200"}, timeout=300)  # fmt: skip


def one_line_error(result, *fragments):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("zoo: error: "), result.stderr
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    return lines[0]


def edit_entry(home, name, **changes):
    """Hand-edit registry.toml's entry `name` (None deletes a key), as a user or an attacker could."""
    import tomli_w

    path = home / "registry.toml"
    document = tomllib.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del document["domains"][name][key]
        else:
            document["domains"][name][key] = value
    path.write_text(tomli_w.dumps(document))


def leftovers(home):
    """Temporary files and journals an interrupted or failed write could leave."""
    return sorted(path.name for folder in (home, home / "checkpoints") if folder.is_dir()
                  for path in folder.iterdir() if path.name.endswith((".tmp", ".journal")))  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Paths from the registry stay inside checkpoints/


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("precious")
    return path


@pytest.mark.parametrize("how", ["dotdot", "checkpoints-dotdot", "absolute", "symlink"])
def test_remove_load_and_info_never_touch_a_file_outside_checkpoints(zoo_home, victim, how):
    install_model("alpha", make_generator(), family="alpha", lineage={})
    file = {"dotdot": "../victim.txt", "checkpoints-dotdot": "checkpoints/../../victim.txt", "absolute": str(victim),
            "symlink": "checkpoints/alpha.safetensors"}[how]  # fmt: skip
    if how == "symlink":
        (zoo_home / "checkpoints" / "alpha.safetensors").unlink()
        (zoo_home / "checkpoints" / "alpha.safetensors").symlink_to(victim)
    edit_entry(zoo_home, "alpha", file=file)
    for attempt in (lambda: Registry().remove("alpha"), lambda: load("alpha"), lambda: describe("alpha")):
        with pytest.raises(ZooError, match=r"registry.toml: entry \[domains.alpha\] has file = .* not inside .*checkpoints"):
            attempt()
    assert victim.read_text() == "precious" and "alpha" in Registry().domains()
    assert [row["state"] for row in domain_status("alpha")] == ["installed"]  # `zoo list` still works
    if how == "dotdot":
        one_line_error(zoo("remove", "alpha", "-y"), "registry.toml", "alpha", "checkpoints/alpha.safetensors")
        assert victim.read_text() == "precious"


def test_a_symlinked_checkpoints_folder_is_followed_and_recorded_relative(zoo_home, tmp_path):
    elsewhere = tmp_path / "big-disk"
    elsewhere.mkdir()
    zoo_home.mkdir()
    (zoo_home / "checkpoints").symlink_to(elsewhere)
    entry = install_model("alpha", make_generator(), family="alpha", lineage={})
    assert entry.file == "checkpoints/alpha.safetensors" and (elsewhere / "alpha.safetensors").is_file()
    assert load("alpha").info.domain == "alpha"
    Registry().remove("alpha")
    assert not (elsewhere / "alpha.safetensors").exists() and (zoo_home / "checkpoints").is_symlink()


# ---------------------------------------------------------------------------------------------------------------------
# The registry's schema is checked on read


@pytest.mark.parametrize(
    "changes, problem",
    [({"family": None}, "lacks family"), ({"resolution": "big"}, "has resolution = 'big', which should be int"),
     ({"lineage": "none"}, "which should be dict"), ({"sha256": 12}, "which should be str"),
     ({"resolution": True}, "which should be int")],
)  # fmt: skip
def test_malformed_entries_are_one_line_errors_naming_the_entry(zoo_home, changes, problem):
    install_model("alpha", make_generator(), family="alpha", lineage={})
    edit_entry(zoo_home, "alpha", **changes)
    with pytest.raises(ZooError, match=rf"registry.toml: entry \[domains.alpha\] .*{problem}.*correct it by hand"):
        Registry().domains()
    if "family" in changes:  # a missing key was a KeyError traceback in `zoo list` and `zoo sample`
        for command in (["list"], ["sample", "alpha", "--out", zoo_home / "x.png"]):
            one_line_error(zoo(*command), "registry.toml", "alpha", "lacks family")


def test_entry_names_format_and_domains_table_are_checked(zoo_home):
    zoo_home.mkdir()
    registry = zoo_home / "registry.toml"
    for text, problem in [('[domains."../x"]\nfile = "a"', "invalid name"), ("domains = 3", "'domains' is not a table"),
                          ("format_version = 7", "format_version 7"), ('[domains]\nalpha = "x"', "is not a table")]:  # fmt: skip
        registry.write_text(text)
        with pytest.raises(ZooError, match=problem):
            Registry().domains()
    registry.unlink()
    registry.mkdir()
    with pytest.raises(ZooError, match="registry.toml: not a file; move it away"):
        Registry().domains()


def test_zoo_home_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "home-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("ZOO_HOME", str(not_a_folder))
    with pytest.raises(ZooError, match="home-file is not a folder; point ZOO_HOME at a folder"):
        install_model("alpha", make_generator(), family="alpha", lineage={})


# ---------------------------------------------------------------------------------------------------------------------
# Installs are transactions


def nested(depth):
    lineage = inner = {}
    for _ in range(depth):
        inner["k"] = {}
        inner = inner["k"]
    return lineage


@pytest.mark.parametrize("lineage", [{"note": "lone \udc80 surrogate"}, {"bad": {"k": object()}}, nested(3000)])
def test_a_lineage_toml_cannot_hold_fails_before_any_file_is_written(zoo_home, lineage):
    with pytest.raises(ZooError, match=r"registry.toml: entry alpha cannot be stored as TOML"):
        install_model("alpha", make_generator(), family="alpha", lineage=lineage)
    assert list((zoo_home / "checkpoints").iterdir()) == [] and not (zoo_home / "registry.toml").exists()
    install_model("alpha", make_generator(), family="alpha", lineage={"note": "fine"})  # nothing blocks a re-run


def fail_registry_write(monkeypatch, code):
    """The registry write fails like a full or read-only disk would (after the checkpoint is in place)."""
    import zoo.registry

    real = zoo.registry.atomic_write_bytes

    def failing(path, data):
        if path.name == "registry.toml":
            raise OSError(code, os.strerror(code), str(path))
        real(path, data)

    monkeypatch.setattr(zoo.registry, "atomic_write_bytes", failing)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_failed_registry_write_rolls_the_checkpoint_back(zoo_home, monkeypatch, code):
    install_model("alpha", make_generator(0), family="alpha", lineage={})
    before = (zoo_home / "checkpoints" / "alpha.safetensors").read_bytes()
    registry_before = (zoo_home / "registry.toml").read_text()
    fail_registry_write(monkeypatch, code)
    with pytest.raises(ZooError, match=f"(?i)registry.toml: {os.strerror(code)}; .*; nothing was changed$"):
        install_model("alpha", make_generator(1), family="alpha", lineage={}, force=True)
    with pytest.raises(ZooError, match="nothing was changed"):
        install_model("beta", make_generator(2), family="beta", lineage={})
    assert (zoo_home / "checkpoints" / "alpha.safetensors").read_bytes() == before
    assert not (zoo_home / "checkpoints" / "beta.safetensors").exists()
    assert (zoo_home / "registry.toml").read_text() == registry_before and leftovers(zoo_home) == []
    assert load("alpha").info.domain == "alpha"


def _install_and_die_at(home, moment):
    """Install in a child process that dies (os._exit, like kill -9) at `moment` of the commit."""
    os.environ["ZOO_HOME"] = str(home)
    import zoo.registry

    if moment == "before-rename":
        replace = os.replace
        os.replace = lambda source, target: os._exit(9) if str(target).endswith("/alpha.safetensors") else replace(source, target)
    else:
        real = zoo.registry.atomic_write_bytes
        zoo.registry.atomic_write_bytes = lambda path, data: os._exit(9) if path.name == "registry.toml" else real(path, data)
    install_model("alpha", make_generator(1), family="alpha", lineage={}, force=True)


@pytest.mark.parametrize("moment, replaced", [("before-rename", False), ("after-rename", True)])
@pytest.mark.parametrize("existing", [False, True])
def test_a_killed_install_is_undone_or_completed_by_the_next_command(zoo_home, moment, replaced, existing):
    if existing:
        install_model("alpha", make_generator(0), family="alpha", lineage={})
    before = Registry().get("alpha")
    child = multiprocessing.get_context("spawn").Process(target=_install_and_die_at, args=(zoo_home, moment))
    child.start()
    child.join()
    assert child.exitcode == 9 and (zoo_home / "registry.toml.journal").exists()
    Registry().get("alpha") == before  # readers see the registry as it was
    install_model("other", make_generator(3), family="other", lineage={})  # any locked edit recovers
    after = Registry().get("alpha")
    if replaced:
        assert after is not None and after.sha256 != (before.sha256 if before else None)
        assert load("alpha").info.domain == "alpha"  # sha256 verified: file and entry agree
    else:
        assert after == before
        assert existing == (zoo_home / "checkpoints" / "alpha.safetensors").exists()
    assert leftovers(zoo_home) == [] and Registry().unregistered_files() == []


def test_a_journal_naming_paths_outside_checkpoints_is_refused(zoo_home, victim):
    install_model("alpha", make_generator(), family="alpha", lineage={})
    journal = {"registry": "", "renames": [[str(victim), "../../elsewhere.txt"]]}
    (zoo_home / "registry.toml.journal").write_text(json.dumps(journal))
    with pytest.raises(ZooError, match=r"registry.toml.journal: unreadable \(.*is not a file name in checkpoints/\); delete it"):
        Registry().remove("alpha")
    assert victim.read_text() == "precious" and Registry().get("alpha") is not None


def test_a_held_lock_times_out_with_a_clear_error(zoo_home, monkeypatch):
    import filelock

    import zoo.registry

    install_model("alpha", make_generator(), family="alpha", lineage={})
    monkeypatch.setattr(zoo.registry, "LOCK_TIMEOUT_SECONDS", 0.2)
    with filelock.FileLock(str(zoo_home / "registry.toml.lock")):
        with pytest.raises(ZooError, match=r"registry.toml.lock: locked by another zoo command for 0.2s; retry when it ends"):
            Registry().remove("alpha")
    assert Registry().get("alpha") is not None


def test_stale_temporary_files_are_removed_under_the_lock(zoo_home):
    (zoo_home / "checkpoints").mkdir(parents=True)
    stale = [zoo_home / "checkpoints" / ".alpha.safetensors.k1llED.tmp", zoo_home / ".registry.toml.x9.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    kept = zoo_home / "checkpoints" / "README.md"
    kept.write_text("mine")
    install_model("alpha", make_generator(), family="alpha", lineage={})
    assert not any(path.exists() for path in stale) and kept.exists()


def test_an_unregistered_checkpoint_is_listed_and_named_by_import(zoo_home, tmp_path):
    source = tmp_path / "alpha.safetensors"
    save_model(source, make_generator(), domain="alpha", family="alpha", lineage={})
    (zoo_home / "checkpoints").mkdir(parents=True)
    shutil.copy(source, zoo_home / "checkpoints" / "alpha.safetensors")
    rows = {row["domain"]: row for row in domain_status()}
    assert rows["alpha"]["state"] == "unregistered file"
    one_line_error(zoo("import", source, "--name", "alpha"), "alpha.safetensors: an unregistered file", "--force", "delete the file")
    assert "unregistered file" in zoo("list", "alpha").stdout
    assert zoo("import", source, "--name", "alpha", "--force").returncode == 0
    assert {row["domain"]: row for row in domain_status()}["alpha"]["state"] == "installed"


# ---------------------------------------------------------------------------------------------------------------------
# Full and read-only disks, for real: a tiny tmpfs in a private mount namespace (root only)


def in_tiny_tmpfs(tmp_path, script, size="256k"):
    """Run `script` with ZOO_HOME on a fresh `size` tmpfs (see the script's own `remount` calls for read-only)."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    code = f"mount -t tmpfs -o size={size} none {mount} && ZOO_HOME={mount}/home {sys.executable} -c \"$0\""
    result = subprocess.run(["unshare", "-m", "sh", "-c", code, textwrap.dedent(script)], capture_output=True, text=True,
                            env={**os.environ, "MOUNT": str(mount)}, timeout=120)  # fmt: skip
    if "mount:" in result.stderr or "unshare:" in result.stderr:
        pytest.skip(f"no private tmpfs here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


SETUP = """
    import json, os, subprocess, torch
    from pathlib import Path
    from zoo.errors import ZooError
    from zoo.model import Generator, ModelConfig
    from zoo.registry import Registry, install_model
    home = Path(os.environ["ZOO_HOME"])
    def attempt(name, size):
        torch.manual_seed(0)
        resolutions = (4, 8, 16, 32)[:{8: 2, 32: 4}[size]]
        generator = Generator(ModelConfig(size=size, style_dim=8, n_mlp=1, channels={r: size * 2 for r in resolutions}))  # 9 kB or 1.3 MB
        try:
            install_model(name, generator, family=name, lineage={})
            return "installed"
        except ZooError as error:
            return str(error)
    def files():
        return sorted(str(path.relative_to(home)) for path in home.rglob("*"))
"""


def test_a_full_disk_leaves_the_zoo_as_it_was(tmp_path):
    outcome = in_tiny_tmpfs(tmp_path, SETUP + """
    small = attempt("small", 8)
    before = files()
    big = attempt("big", 32)
    print(json.dumps({"small": small, "big": big, "before": before, "after": files()}))
    """)  # fmt: skip
    assert outcome["small"] == "installed"
    assert "no space left on device" in outcome["big"] and "big.safetensors" in outcome["big"]
    assert outcome["after"] == outcome["before"]


def test_a_read_only_home_is_a_clear_error_naming_the_path(tmp_path):
    outcome = in_tiny_tmpfs(tmp_path, SETUP + """
    attempt("small", 8)
    before = files()
    subprocess.run(["mount", "-o", "remount,ro", os.environ["MOUNT"]], check=True)
    blocked = attempt("second", 8)
    print(json.dumps({"blocked": blocked, "before": before, "after": files(), "listed": sorted(Registry().domains())}))
    """)  # fmt: skip
    assert "read-only file system" in outcome["blocked"] and "registry.toml.lock" in outcome["blocked"]
    assert outcome["after"] == outcome["before"] and outcome["listed"] == ["small"]


# ---------------------------------------------------------------------------------------------------------------------
# Files get the usual permissions


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_checkpoints_and_other_atomic_writes_get_the_umask_mode(zoo_home, tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        install_model("alpha", make_generator(), family="alpha", lineage={})
        from safetensors.torch import save_file

        with atomic_path(tmp_path / "cache.safetensors") as tmp:
            save_file({"x": torch.zeros(2)}, str(tmp))  # replaces the file atomic_path made
    finally:
        os.umask(previous)
    assert (zoo_home / "checkpoints" / "alpha.safetensors").stat().st_mode & 0o777 == mode
    assert (tmp_path / "cache.safetensors").stat().st_mode & 0o777 == mode
    assert (zoo_home / "registry.toml").stat().st_mode & 0o777 == mode


# ---------------------------------------------------------------------------------------------------------------------
# Names


def test_names_are_bounded_and_declared_domain_names_are_reserved_for_their_domain(zoo_home):
    assert check_name("a" * MAX_NAME_LENGTH)
    with pytest.raises(ZooError, match=f"is {MAX_NAME_LENGTH + 1} characters long: use at most {MAX_NAME_LENGTH}"):
        check_name("a" * (MAX_NAME_LENGTH + 1))
    with pytest.raises(ZooError, match="is 240 characters long"):
        install_model("a" * 240, make_generator(), family="alpha", lineage={})
    with pytest.raises(ZooError, match=r"'cat' is the 512px domain of family 'cat' \(plugin animals\), but this model is 8px"):
        install_model("cat", make_generator(), family="cat", lineage={})
    assert Registry().domains() == {}
    install_model("cat", make_generator(), family="cat", lineage={}, force=True)
    rows = {row["domain"]: row for row in domain_status()}
    assert rows["cat"]["state"] == "installed" and load("cat").generator.config.size == 8


# ---------------------------------------------------------------------------------------------------------------------
# zoo remove


def test_remove_deletes_the_run_and_names_models_made_from_it(zoo_home):
    base = make_generator(0)
    install_model("base", base, family="base", lineage={})
    tuned = make_generator(1)
    tuned.style.load_state_dict(base.style.state_dict())
    install_model("tuned", tuned, family="base", lineage={"base": "base"})
    install_model("swapped", tuned, family="base", lineage={"base": "other", "target": "tuned"})
    for name in ("base", "tuned"):
        (zoo_home / "runs" / name).mkdir(parents=True)
        (zoo_home / "runs" / name / "snapshot.pt").write_bytes(b"snapshot")
    assert Registry().derived_from("base") == ["tuned"] and Registry().derived_from("tuned") == ["swapped"]

    refused = zoo("remove", "base", input="n\n")
    assert refused.returncode == 1 and "tuned was made from base" in refused.stderr and Registry().get("base")
    removed = zoo("remove", "base", "-y")
    assert removed.returncode == 0 and "tuned was made from base" in removed.stderr
    assert "runs/base" in removed.stdout and not (zoo_home / "runs" / "base").exists()
    assert not (zoo_home / "checkpoints" / "base.safetensors").exists() and "base" not in Registry().domains()
    assert zoo("remove", "tuned", "-y", "--keep-runs").returncode == 0
    assert (zoo_home / "runs" / "tuned" / "snapshot.pt").is_file()
    assert load_model(zoo_home / "checkpoints" / "swapped.safetensors").info.lineage["target"] == "tuned"
