"""The `zoo` command as users run it: real subprocesses, exit codes, one-line errors, files written."""

import os
import subprocess
import sys
import tomllib

from conftest import ROSINALITY
from PIL import Image

FIXTURE = ROSINALITY / "rosinality_small.pt"


def zoo(*args, check=True, **env):
    result = subprocess.run(
        [sys.executable, "-m", "zoo", *map(str, args)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", **env}, timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"zoo {args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def assert_user_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_import_sample_info(zoo_home, tmp_path):
    imported = zoo("import", FIXTURE, "--name", "tiny")
    assert "installed tiny" in imported.stdout
    entry = tomllib.loads((zoo_home / "registry.toml").read_text())["domains"]["tiny"]
    assert entry["lineage"]["source_format"] == "rosinality-train"
    assert (zoo_home / entry["file"]).is_file()

    out = tmp_path / "grid.png"
    zoo("sample", "tiny", "--n", "4", "--seed", "1", "--truncation", "0.7", "--out", out)
    with Image.open(out) as image:
        assert image.size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)

    info = zoo("info", "tiny", "--json").stdout
    assert '"verified against registry.toml": true' in info
    assert '"style_dim": 48' in info
    assert zoo("--version").stdout.startswith("zoo 0.")


def test_user_errors_are_one_line_with_exit_code_2(zoo_home, tmp_path):
    assert_user_error(zoo("sample", "nothing-here", check=False), "nothing-here", "zoo import")
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("hello")
    assert_user_error(zoo("import", not_a_model, "--name", "x", check=False), "notes.pt")
    assert_user_error(zoo("import", FIXTURE, "--name", "../evil", check=False), "invalid name")
    zoo("import", FIXTURE, "--name", "tiny")
    assert_user_error(zoo("import", FIXTURE, "--name", "tiny", check=False), "already exists", "--force")
    existing = tmp_path / "taken.png"
    existing.write_bytes(b"keep me")
    assert_user_error(zoo("sample", "tiny", "--out", existing, check=False), "taken.png", "--force")
    assert existing.read_bytes() == b"keep me"
    assert_user_error(zoo("pull", "anime", check=False), "publishes no weights", "zoo add-domain anime")


def test_two_imports_started_together_both_land(zoo_home):
    commands = [[sys.executable, "-m", "zoo", "import", str(FIXTURE), "--name", name] for name in ("first", "second")]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for command in commands]
    assert [p.wait(timeout=300) for p in processes] == [0, 0]
    assert set(tomllib.loads((zoo_home / "registry.toml").read_text())["domains"]) == {"first", "second"}


def test_list_and_plugins(zoo_home):
    zoo("import", FIXTURE, "--name", "tiny")
    listing = zoo("list").stdout
    for name in ("face", "portrait", "cartoon", "anime", "cat", "dog", "wild", "emoji-noto", "emoji-fluent-3d", "tiny"):
        assert name in listing
    assert "zoo pull" in listing and "zoo add-domain" in listing and "zoo train-base" in listing
    assert "emoji-twemoji" not in zoo("list", "--family", "face").stdout
    plugins = zoo("plugins").stdout
    assert "faces" in plugins and "register_domains" in plugins


def test_pull_of_unpinned_weights_needs_a_hash_or_an_explicit_opt_out(zoo_home):
    result = zoo("pull", "cat", check=False, ZOO_OFFLINE="1")
    assert_user_error(result, "afhqcat.pkl", "--sha256 HEX", "--allow-unpinned")
    assert not (zoo_home / "downloads").exists()


def test_pull_offline_fails_cleanly_with_the_url(zoo_home):
    result = zoo("pull", "face", "--allow-unpinned", check=False, ZOO_OFFLINE="1")
    assert_user_error(result, "ffhq-res256-mirror-paper256-noaug.pkl", "zoo pull face --file", "zoo import")
    assert not (zoo_home / "checkpoints").exists() or not any((zoo_home / "checkpoints").iterdir())
    assert not any((zoo_home / "downloads").iterdir())


def test_remove(zoo_home):
    zoo("import", FIXTURE, "--name", "tiny")
    zoo("remove", "tiny", "--yes")
    assert "tiny" not in tomllib.loads((zoo_home / "registry.toml").read_text()).get("domains", {})
    assert not (zoo_home / "checkpoints" / "tiny.safetensors").exists()
    assert_user_error(zoo("remove", "tiny", "--yes", check=False), "not installed")


def test_info_on_declared_domains():
    facts = zoo("info", "anime", "--json").stdout
    assert '"declared by plugin": "faces"' in facts and '"base": "face"' in facts
