"""zoo's dependencies as a library states them: ranges in pyproject.toml that admit other torch builds, the exact
versions CI uses in constraints.txt (inside those ranges), and pip keeping an installed torch of another version when
zoo is installed beside it (a dry run against that torch's metadata: nothing is downloaded)."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
REQUIREMENTS = {canonicalize_name(r.name): r for r in map(Requirement, PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"])
                if canonicalize_name(r.name) != PROJECT["name"]}  # fmt: skip  (dev names zoo's own serve extra)


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_dependency_inside_its_range():
    pins = constraints()
    assert set(REQUIREMENTS) <= set(pins)
    outside = {name: pins[name] for name, requirement in REQUIREMENTS.items() if not requirement.specifier.contains(pins[name])}
    assert outside == {}
    assert pins["torch"] == __import__("importlib.metadata").metadata.version("torch")  # what this environment runs


@pytest.mark.parametrize("version, admitted", [
    ("2.5.1+cu121", True), ("2.13.0+cpu", True), ("2.14.1+rocm6.4", True), ("2.9.0", True),
    ("2.4.1", False), ("1.13.1+cu117", False), ("3.0.0", False),
])  # fmt: skip
def test_the_torch_range_admits_any_2x_build_from_2_5(version, admitted):
    assert REQUIREMENTS["torch"].specifier.contains(Version(version)) is admitted


def fake_distribution(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """The metadata of an installed distribution, which is all pip's resolver reads about it."""
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "INSTALLER").write_text("pip\n")


def dry_run_install(tmp_path, torch_version: str, torchvision_version: str) -> subprocess.CompletedProcess:
    """`pip install --dry-run --no-index` of this checkout where torch and torchvision of the given versions are
    installed (their metadata first on the path) and every other dependency is this environment's."""
    overlay = tmp_path / "installed"
    fake_distribution(overlay, "torch", torch_version)
    fake_distribution(overlay, "torchvision", torchvision_version, (f"torch=={torch_version.split('+')[0]}",))
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation",
               "--disable-pip-version-check", "--report", str(report), str(ROOT)]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}  # no machine's pip settings:
    env.update(PYTHONPATH=str(overlay), PIP_CONFIG_FILE=os.devnull)  # no index, no local wheels, no global constraints
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    result.report = json.loads(report.read_text()) if result.returncode == 0 else None
    return result


@pytest.mark.slow  # a pip run each: 20 s on a busy machine
def test_installing_zoo_keeps_an_installed_torch_of_another_version(tmp_path):
    result = dry_run_install(tmp_path, "2.5.1+cu121", "0.20.1+cu121")
    assert result.returncode == 0, result.stderr
    assert [item["metadata"]["name"] for item in result.report["install"]] == ["zoo-stylegan"]
    assert "Would install zoo-stylegan-" in result.stdout


@pytest.mark.slow
def test_a_torch_outside_the_range_would_have_to_be_replaced(tmp_path):
    result = dry_run_install(tmp_path, "1.13.1+cu117", "0.14.1+cu117")
    assert result.returncode != 0
    assert "No matching distribution found for torch<3,>=2.5" in result.stderr
