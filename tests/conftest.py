import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo import import_checkpoint, install_model, load
from zoo.images import save_image
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


def perturbed(generator, scale, seed, mapping_too=False):
    """A copy with noisy synthesis weights (and mapping, when asked): a stand-in for a fine-tuned domain."""
    other = copy.deepcopy(generator)
    random = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in other.named_parameters():
            if mapping_too or not name.startswith("style."):
                param.add_(scale * torch.randn(param.shape, generator=random))
    return other


@pytest.fixture
def model(zoo_home):
    """The rosinality fixture installed as 'tiny', loaded."""
    import_checkpoint(ROSINALITY / "rosinality_small.pt", "tiny")
    return load("tiny")


@pytest.fixture
def family(zoo_home):
    """tiny (the base), tiny-b and tiny-c in its family, and stranger with a mapping network of its own."""
    import_checkpoint(ROSINALITY / "rosinality_small.pt", "tiny")
    base = load("tiny").generator
    install_model("tiny-b", perturbed(base, 0.05, 1), family="tiny", lineage={"base": "tiny"})
    install_model("tiny-c", perturbed(base, 0.05, 2), family="tiny", lineage={"base": "tiny"})
    install_model("stranger", perturbed(base, 0.05, 3, mapping_too=True), family="stranger", lineage={})
    return base


def save_samples(generator, folder, count, seed=7):
    """`count` samples of `generator` (truncation 0.7) saved as folder/face0.png, face1.png, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    z = torch.randn(count, generator.config.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        images, _ = generator([z], truncation=0.7)
    for index, image in enumerate(images):
        save_image(image, folder / f"face{index}.png")
    return folder


@pytest.fixture
def inputs(tmp_path, family):
    """Two samples of the family's base, face0.png and face1.png."""
    return save_samples(family, tmp_path / "inputs", 2)
