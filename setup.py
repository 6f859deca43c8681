"""setuptools reads pyproject.toml; this only adds the shipped zoo to a built wheel (zoo/shipped.py): the embedded
emoji zoo of the checkout's registry.toml (the models, encoder and translator named emoji-*: 10 files, 51 MB, with
checkpoints/LICENSES.md and README.md) becomes package data of `zoo`, so `pip install zoo-stylegan` brings the models
`zoo demo` needs. Only those ship, not whatever else a developer's checkout has installed. An editable install runs
from the checkout, which holds them."""

import shutil
import tomllib
from pathlib import Path

import tomli_w
from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
SHIPPED_PREFIX = "emoji-"
NOTES = ("LICENSES.md", "README.md")
TABLES = ("domains", "encoders", "translators")  # registry.toml's tables of installed files (zoo.registry)


def shipped_registry() -> dict:
    """registry.toml with only the shipped models, encoders and translators."""
    document = tomllib.loads((ROOT / "registry.toml").read_text(encoding="utf-8"))
    for table in TABLES:
        document[table] = {name: entry for name, entry in document.get(table, {}).items() if name.startswith(SHIPPED_PREFIX)}
    return document


class BuildWithShippedZoo(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        shipped = Path(self.build_lib) / "zoo" / "shipped"
        shutil.rmtree(shipped, ignore_errors=True)
        (shipped / "checkpoints").mkdir(parents=True)
        registry = shipped_registry()
        files = [entry["file"] for table in TABLES for entry in registry[table].values()]
        for file in files + [f"checkpoints/{note}" for note in NOTES]:
            shutil.copyfile(ROOT / file, shipped / file)
        (shipped / "registry.toml").write_text(tomli_w.dumps(registry), encoding="utf-8")


setup(cmdclass={"build_py": BuildWithShippedZoo})
