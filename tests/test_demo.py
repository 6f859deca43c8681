"""`zoo demo` on a stand-in emoji family: three untrained models with the emoji architecture and one mapping network."""

import copy
import re

import pytest
import torch
from test_cli import assert_user_error, zoo
from zoo_plugins.emoji import BASE_ARCHITECTURE, RESOLUTION, is_training_image

from zoo import demo, install_model
from zoo.demo import DemoSettings, cast, run_demo
from zoo.errors import ZooError
from zoo.inversion import InversionSettings
from zoo.model import Generator, ModelConfig

STYLES = ("emoji-noto", "emoji-twemoji", "emoji-openmoji")


@pytest.fixture
def emoji_family(zoo_home):
    torch.manual_seed(0)
    base = Generator(ModelConfig(size=RESOLUTION, **BASE_ARCHITECTURE)).eval()
    for index, name in enumerate(STYLES):
        model = copy.deepcopy(base)
        with torch.no_grad():
            model.to_rgbs[-1].conv.weight.add_(0.5 * index)
        install_model(name, model, family="emoji", lineage={"base": None if index == 0 else "emoji-noto"})


def test_cast_takes_held_out_inputs_of_the_base(emoji_family):
    players = cast(DemoSettings(inputs=4))
    assert players.base == "emoji-noto" and players.targets == ["emoji-openmoji", "emoji-twemoji"]
    assert len(players.inputs) == 4 and all(path.parent.name == "noto" for path in players.inputs)
    assert not any(is_training_image(path) for path in players.inputs)


def test_demo_writes_a_page_of_translations_styles_references_and_distances(emoji_family, tmp_path):
    out = tmp_path / "demo"
    zoo("train-translator", "emoji-noto", "--iters", "2", "--batch", "4")
    zoo("train-encoder", "emoji-noto", "--iters", "2", "--batch", "4")  # the reference's appearance
    result = zoo("demo", "--out", out, "--inputs", "2", "--styles", "2", "--steps", "3", "--samples", "8")
    assert f"wrote {out / 'index.html'}" in result.stdout.replace("\n", "")
    page = (out / "index.html").read_text()
    images = re.findall(r'src="([^"]+)"', page)
    assert all((out / image).is_file() for image in images)
    names = {image.rsplit("/", 1)[-1] for image in images}
    assert sum(name.endswith("-truth.png") for name in names) == 2 * 2  # 2 inputs x 2 targets, each with its answer
    assert {"emoji-twemoji-style2.png", "emoji-openmoji-reference-guided.png", "distances.png"} <= names
    assert "1 - SSIM" in page and (out / "distances.csv").is_file() and "distilled translator" in page
    assert not any(name.startswith("reconstruction-") for name in names)  # nothing was inverted
    assert_user_error(zoo("demo", "--out", out, check=False), "already exists", "--force")


def test_demo_inverts_when_the_recipe_does(emoji_family, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "resolve_method", lambda settings, targets: InversionSettings(method="bounded"))
    page = run_demo(tmp_path / "demo", DemoSettings(inputs=2, styles=2, steps=3, samples=8)).read_text()
    names = {image.rsplit("/", 1)[-1] for image in re.findall(r'src="([^"]+)"', page)}
    assert "Inversion: bounded" in page and sum(name.startswith("reconstruction-") for name in names) == 2
    assert {"emoji-twemoji-style2.png", "emoji-openmoji-reference-guided.png"} <= names


def test_demo_inverts_while_the_family_has_no_translator(emoji_family, tmp_path):
    page = run_demo(tmp_path / "demo", DemoSettings(inputs=2, styles=1, steps=2, samples=8)).read_text()
    assert "Inversion: bounded" in page and "distilled translator" not in page


def test_demo_needs_the_family_installed(zoo_home):
    with pytest.raises(ZooError, match="build it with scripts/build-emoji-zoo.sh"):
        cast(DemoSettings())
