"""zoo for pip users: the wheel built from this checkout, installed into a fresh virtual environment outside it, runs
`zoo demo` offline with an empty ZOO_HOME (the emoji family comes as package data, zoo/shipped.py).

The fresh environment gets no torch of its own: a .pth file puts this environment's site-packages (torch and the
other dependencies) after its own, and the wheel is installed with --no-deps --no-index, so nothing is downloaded.
"""

import os
import site
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import ROSINALITY

from zoo import import_checkpoint, shipped
from zoo.registry import Registry, load

ROOT = Path(__file__).resolve().parent.parent
PYPI_LIMIT_BYTES = 100 * 1000 * 1000  # PyPI's default upload limit per file


def test_a_new_home_gets_the_shipped_zoo_once(tmp_path, monkeypatch, zoo_home):
    """What a wheel's first use of a home does, with a shipped zoo made here (one model and its registry)."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "builder"))
    entry = import_checkpoint(ROSINALITY / "rosinality_small.pt", "tiny")
    monkeypatch.setattr(shipped, "SHIPPED", tmp_path / "builder")
    monkeypatch.setenv("ZOO_HOME", str(zoo_home))
    assert not zoo_home.exists()
    assert Registry().get("tiny").to_toml() == Registry(tmp_path / "builder" / "registry.toml").get("tiny").to_toml()
    assert Registry().get("tiny").sha256 == entry.sha256
    assert load("tiny").info.domain == "tiny"  # the copied file has the registered sha256
    Registry().remove("tiny")
    assert Registry().domains() == {} and not shipped.seed_home(zoo_home)  # removed stays removed


def test_without_a_shipped_zoo_a_home_starts_empty(zoo_home):
    assert shipped.shipped_zoo() is None  # a checkout: the models are in its own checkpoints/
    assert Registry().domains() == {} and not (zoo_home / "registry.toml").exists()


def run(*command, cwd=None, env=None, timeout=1800):
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow  # 16 min on 2 cores shared with ~6 busy sessions: build 149 s, venv + install 98 s, demo 729 s
def test_a_wheel_installed_outside_the_checkout_runs_the_demo_offline(tmp_path):
    started = time.monotonic()
    run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation", "--no-index", "-w", tmp_path / "dist",
        "--disable-pip-version-check", cwd=tmp_path)  # fmt: skip
    wheel = next((tmp_path / "dist").glob("zoo_stylegan-*.whl"))
    assert wheel.stat().st_size < PYPI_LIMIT_BYTES
    registry = tomllib.loads((ROOT / "registry.toml").read_text())
    shipped = {f"zoo/shipped/{entry['file']}" for table in ("domains", "encoders") for entry in registry[table].values()}
    assert shipped <= set(zipfile.ZipFile(wheel).namelist())
    built = time.monotonic()

    venv = tmp_path / "venv"
    run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    Path(purelib, "zoo-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--ignore-installed",
        "--disable-pip-version-check", wheel)  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "ZOO_HOME", "ZOO_LOAD_PLUGINS")}
    env.update(ZOO_HOME=str(tmp_path / "empty-home"), ZOO_OFFLINE="1", HF_HUB_OFFLINE="1")
    where = run(python, "-c", "import zoo, torch; print(zoo.__file__)", cwd=tmp_path, env=env).stdout.strip()
    assert where.startswith(purelib)
    installed = time.monotonic()

    # the demo's every step at a smaller size (the full one is the README's quick start)
    run(venv / "bin" / "zoo", "demo", "--out", tmp_path / "demo", "--inputs", 2, "--styles", 2, "--steps", 30, "--samples", 32,
        cwd=tmp_path, env=env)  # fmt: skip
    page = (tmp_path / "demo" / "index.html").read_text()
    assert "emoji-twemoji" in page and "emoji-noto" in page
    assert sorted(path.name for path in (tmp_path / "empty-home" / "checkpoints").glob("*.safetensors")) == sorted(
        Path(file).name for file in shipped
    )
    print(f"wheel {wheel.stat().st_size / 1e6:.1f} MB built in {built - started:.0f} s; venv + install "
          f"{installed - built:.0f} s; zoo demo {time.monotonic() - installed:.0f} s")
