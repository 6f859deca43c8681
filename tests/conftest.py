import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.model import ModelConfig

FIXTURES = Path(__file__).parent / "fixtures"
ROSINALITY = FIXTURES / "rosinality"
FIXTURE_CONFIG = dict(size=32, style_dim=48, n_mlp=3, channels={4: 24, 8: 24, 16: 16, 32: 12})


# Only zoo's own (built-in) plugins load in tests: installed third-party plugins never leak into the suite.
os.environ["ZOO_LOAD_PLUGINS"] = "zoo-stylegan"
os.environ.pop("ZOO_STRICT_PLUGINS", None)


@pytest.fixture(autouse=True)
def zoo_home(tmp_path, monkeypatch):
    """Every test gets its own empty zoo, so nothing touches the checkout's registry.toml."""
    home = tmp_path / "zoo-home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    return home


@pytest.fixture
def tiny_config():
    return ModelConfig(size=16, style_dim=16, n_mlp=2, channels={4: 16, 8: 12, 16: 8})


@pytest.fixture
def images(tmp_path):
    """A folder of 12 random 24x20 RGB images (non-square, so cropping is exercised)."""
    root = tmp_path / "images"
    root.mkdir()
    rng = np.random.RandomState(0)
    for index in range(12):
        Image.fromarray(rng.randint(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / f"{index:02d}.png")
    return root


@pytest.fixture
def reference():
    return torch.load(ROSINALITY / "reference_small.pt", weights_only=True)
