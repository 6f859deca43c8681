"""The example third-party plugin (examples/zoo-sketch) installs like any pip package and shows up in zoo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zoo-sketch"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example pip-installed into its own site directory (the test environment itself stays untouched)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(EXAMPLE)],
        check=True, capture_output=True,
    )
    return target


def zoo_with(site, *args):
    env = {key: value for key, value in os.environ.items() if key != "ZOO_LOAD_PLUGINS"}
    env.update(PYTHONPATH=str(site), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env, timeout=120, check=True)


def test_installed_example_is_listed_with_its_state(site):
    rows = {row["domain"]: row for row in json.loads(zoo_with(site, "list", "emoji-*", "--json").stdout)}
    assert (rows["emoji-sketch"]["state"], rows["emoji-sketch"]["base"]) == ("zoo add-domain", "emoji-noto")
    assert (rows["emoji-sketch"]["plugin"], rows["emoji-sketch"]["version"]) == ("sketch", "0.1.0")
    assert "emoji-noto" in rows


def test_info_and_plugins_show_it(site):
    facts = json.loads(zoo_with(site, "info", "emoji-sketch", "--json").stdout)
    assert facts["declared by plugin"] == "sketch"
    assert facts["domain spec"]["recipe"]["freeze_d"] == 1
    listing = {row["name"]: row for row in json.loads(zoo_with(site, "plugins", "--json").stdout)}
    assert listing["sketch"]["distribution"] == "zoo-sketch" and listing["sketch"]["hooks"] == ["register_domains"]
    assert listing["faces"]["distribution"] == "zoo-stylegan"


def test_a_broken_plugin_leaves_zoo_list_working(site, tmp_path):
    broken = tmp_path / "broken-site"
    (broken / "zoo_broken-0.1.dist-info").mkdir(parents=True)
    (broken / "zoo_broken-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-broken\nVersion: 0.1\n")
    (broken / "zoo_broken-0.1.dist-info" / "entry_points.txt").write_text("[zoo]\nbroken = zoo_broken\n")
    (broken / "zoo_broken.py").write_text("raise ImportError('this plugin is broken on purpose')\n")
    result = zoo_with(f"{site}{os.pathsep}{broken}", "list", "--json")
    assert "emoji-sketch" in result.stdout and "emoji-noto" in result.stdout
    assert result.stderr.startswith("zoo: warning: zoo plugin broken: failed to load (ImportError: this plugin is broken on purpose)")
    assert len(result.stderr.strip().splitlines()) == 1
    plugins = {row["name"]: row for row in json.loads(zoo_with(f"{broken}", "plugins", "--json").stdout)}
    assert "broken on purpose" in plugins["broken"]["problems"][0]
