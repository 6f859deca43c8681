"""The emoji zoo shipped in checkpoints/: every file matches registry.toml, and the family shares one W space."""

from pathlib import Path

import pytest
import torch
from zoo_plugins.emoji import RESOLUTION, STYLES

from zoo.checkpoint import load_model
from zoo.metrics import ssim
from zoo.registry import Registry

SHIPPED = Registry(Path(__file__).parents[1] / "registry.toml")
FAMILY = [f"emoji-{style}" for style in STYLES]


@pytest.fixture(scope="module")
def shipped():
    domains = SHIPPED.domains()
    missing = [name for name in FAMILY if name not in domains]
    assert not missing, f"registry.toml lacks {missing}: build them with scripts/build-emoji-zoo.sh"
    return {name: load_model(SHIPPED.checkpoint_path(entry), expected_sha256=entry["sha256"]) for name, entry in domains.items()}


def test_every_shipped_model_loads_with_its_recorded_sha256(shipped):
    for name, model in shipped.items():
        entry = SHIPPED.get(name)
        assert model.info.domain == name and model.generator.config.size == entry["resolution"] == RESOLUTION
        assert model.info.mapping_sha256 == entry["mapping_sha256"]


def test_the_six_styles_share_the_base_mapping_and_only_the_ft_ablation_leaves_it(shipped):
    base = shipped["emoji-noto"]
    for name in FAMILY:
        assert shipped[name].info.mapping_sha256 == base.info.mapping_sha256, name
        assert SHIPPED.get(name)["family"] == "emoji"
        if name != "emoji-noto":
            assert SHIPPED.get(name)["lineage"]["base_sha256"] == SHIPPED.get("emoji-noto")["sha256"]
    for name in (name for name in shipped if name.endswith("-ft")):
        assert shipped[name].info.mapping_sha256 != base.info.mapping_sha256, name


def test_a_style_draws_a_latent_as_the_base_does_restyled(shipped):
    """What translation rests on: a latent's twemoji image is nearer its own noto image than another latent's."""
    with torch.no_grad():
        w = shipped["emoji-noto"].generator.mapping(torch.randn(16, 128, generator=torch.Generator().manual_seed(0)))
        noto = shipped["emoji-noto"].generator([w], input_is_latent=True)[0]
        twemoji = shipped["emoji-twemoji"].generator([w], input_is_latent=True)[0]
    same, other = 1 - ssim(noto, twemoji), 1 - ssim(noto, twemoji.roll(1, 0))
    assert (same < other).all() and 0.1 < same.mean() < other.mean() - 0.1  # measured: 0.66 against 0.85
