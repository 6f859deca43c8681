"""The CLI's conventions, over every registered command (so commands added later are covered): -h, help and tables
that are never cut at 80 columns or in a pipe, --json beside every table, enums for fixed choices, every environment
variable documented; and the provenance every PNG zoo writes carries, read back by `zoo info IMAGE.png`."""

import json
import os
import re
import subprocess
import sys
import typing
from enum import Enum
from pathlib import Path

import numpy as np
import pytest
import typer
from conftest import ROSINALITY
from PIL import Image
from test_cli import assert_user_error, zoo
from test_demo import emoji_family  # noqa: F401 - a fixture
from test_train_cli import FAST, TINY
from typer.testing import CliRunner

import zoo as zoo_package
from zoo.choices import parse_seeds
from zoo.cli import app
from zoo.environment import VARIABLES
from zoo.errors import ZooError
from zoo.images import read_provenance

ROOT = Path(__file__).parent.parent
NARROW = {"COLUMNS": "80"}
CUT = re.compile(r"(…|\.\.\.)\s*$")  # rich's ellipsis, click's '...' after a cut short help


def commands() -> dict:
    return typer.main.get_command(app).commands


def help_text(*args) -> str:
    result = CliRunner().invoke(app, [*args, "-h"], env=NARROW, terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_command_help_is_whole_at_80_columns(name):
    text = help_text(name)
    assert text == CliRunner().invoke(app, [name, "--help"], env=NARROW, terminal_width=80).output
    usage, _, rest = text.partition("\n\n")  # the usage may end with an argument's '...' (several values)
    assert "…" not in text
    for line in text.splitlines():
        assert len(line) <= 80, line
    for line in rest.splitlines():
        assert not CUT.search(line), line
    words = set(re.findall(r"-[-\w]+", text))
    for parameter in commands()[name].params:
        for option in parameter.opts + parameter.secondary_opts:
            if option.startswith("-"):
                assert option in words, f"{name}: {option} is not in its help in full"
        choices = enum_of(parameter.type_descriptor.annotation)
        if choices:  # an enum's values are listed, e.g. <bounded|projection|encoder|hybrid>
            assert "|".join(member.value for member in choices) in text


def enum_of(annotation) -> type[Enum] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return candidate
    return None


def test_top_level_help_lists_every_command_in_full_and_the_environment():
    text = help_text()
    flat = " ".join(text.split())
    for name, command in commands().items():
        first_paragraph = " ".join(command.help.split("\n\n")[0].split())
        assert f"{name} {first_paragraph}" in flat.replace("- ", "-"), name  # click may wrap after a hyphen
    for variable in VARIABLES:
        assert variable in text
    assert "--install-completion" in text and "--show-completion" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_every_environment_variable_the_code_reads_is_documented():
    read = set()
    for path in [*(ROOT / "zoo").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        source = path.read_text(encoding="utf-8")
        read |= set(re.findall(r'environ(?:\.get)?[\[(]\s*"([A-Z_]+)"', source))
        read |= set(re.findall(r'"([A-Z_]+)" (?:not )?in os\.environ', source))
        read |= set(re.findall(r'"(ZOO_[A-Z_]+)"', source))
    documented = " ".join(VARIABLES)
    page = (ROOT / "docs" / "environment.md").read_text(encoding="utf-8")
    assert {"ZOO_HOME", "ZOO_OFFLINE", "ZOO_FID_WEIGHTS", "RANK"} <= read
    for variable in read:
        assert variable in documented and f"`{variable}`" in page, variable


def test_import_zoo_makes_zoo_images_available():
    code = "import zoo; print(zoo.images.save_image.__name__, zoo.images.read_provenance.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["save_image", "read_provenance"], result.stderr


def test_seed_lists():
    assert parse_seeds("0-3,12, 7") == [0, 1, 2, 3, 12, 7]
    for bad in ("3-1", "a", "1,1", "1-", "-2", ""):
        with pytest.raises(ZooError, match="--seeds"):
            parse_seeds(bad)


def test_an_option_with_fixed_choices_refuses_others_before_any_work(zoo_home):
    result = zoo("sample", "no-such-model", "--noise", "loud", check=False)
    assert result.returncode == 2 and "'loud' is not one of 'const', 'random'" in result.stderr


@pytest.fixture
def tiny_family(family, tmp_path):
    """The `family` fixture's models, and two input images of its base."""
    from conftest import save_samples

    return save_samples(family, tmp_path / "inputs", 2)


def info_of(path: Path) -> dict:
    """What `zoo info IMAGE.png --json` prints."""
    return json.loads(zoo("info", path, "--json").stdout)


def test_tables_are_whole_in_an_80_column_pipe(tiny_family, tmp_path, zoo_home):
    out = tmp_path / "a-folder-with-a-long-name-so-that-paths-overflow-an-eighty-column-table"
    listing, plugins, info = (zoo(*command, **NARROW).stdout for command in (["list"], ["plugins"], ["info", "tiny"]))
    for table in (listing, plugins, info):
        assert "…" not in table and all(len(line) <= 80 for line in table.splitlines())
    assert "emoji-fluent-color" in listing and "register_domains" in plugins  # whole words, where they fit
    sha256 = json.loads(zoo("info", "tiny", "--json").stdout)["sha256"]
    assert sha256 in "".join(line.split()[-1] for line in info.splitlines()[1:] if line.split())  # folded, not cut
    inverted = zoo("invert", "tiny", tiny_family, "--out", out, "--steps", "2", "--perceptual", "none", **NARROW).stdout
    matrix = zoo("distance-matrix", "--domains", "tiny,tiny-b", "--samples", "4", "--metric", "l1", "--out", tmp_path / "d", **NARROW)
    for printed in (inverted, matrix.stdout):
        assert "…" not in printed
    assert f"wrote {tmp_path / 'd'}.csv" in matrix.stdout  # a path printed outside a table is never broken
    inverted = json.loads(zoo("invert", "tiny", tiny_family, "--out", out, "--steps", "2", "--perceptual", "none", "--force",
                              "--json", **NARROW).stdout)  # fmt: skip
    assert [Path(row["reconstruction"]) for row in inverted["images"]] == [out / f"face{i}-tiny-reconstruction.png" for i in (0, 1)]
    assert 0 <= inverted["images"][0]["ssim"] <= 1
    matrix = json.loads(zoo("distance-matrix", "--domains", "tiny,tiny-b", "--samples", "4", "--metric", "l1", "--out",
                            tmp_path / "d", "--force", "--json").stdout)  # fmt: skip
    assert [model["name"] for model in matrix["models"]] == ["tiny", "tiny-b"] and matrix["matrix"][0][1] > 0
    evaluation = json.loads(zoo("eval", "--from", "tiny", "--to", "tiny-b", "--inputs", tiny_family, "--metric", "l1", "--steps",
                                "2", "--perceptual", "none", "--styles", "0", "--no-fid", "--json", "-", **NARROW).stdout)  # fmt: skip
    assert evaluation["metric"] == "l1" and len(evaluation["inputs"]) == 2


def test_every_png_zoo_writes_carries_its_provenance(tiny_family, tmp_path, zoo_home, images):
    sha = {name: json.loads(zoo("info", name, "--json").stdout)["sha256"] for name in ("tiny", "tiny-b")}

    zoo("sample", "tiny", "--seeds", "3-4,9", "--truncation", "0.7", "--out", tmp_path / "s.png")
    single = info_of(tmp_path / "s-seed0009.png")
    assert single["seed"] == 9 and single["command"] == "sample" and single["truncation"] == 0.7
    assert single["models"][0]["name"] == "tiny" and single["models"][0]["sha256"] == sha["tiny"]
    assert single["zoo_version"] == zoo_package.__version__ and "data_license" in single["models"][0]
    assert info_of(tmp_path / "s.png")["seeds"] == [3, 4, 9]
    with Image.open(tmp_path / "s-seed0009.png") as alone, Image.open(tmp_path / "s.png") as grid:
        assert alone.size == (32, 32)  # seed 9, third of 3 in a 2x2 grid: row 1, column 0
        assert np.array_equal(np.asarray(alone), np.asarray(grid)[36:68, 2:34])

    zoo("translate", "--from", "tiny", "--to", "tiny-b", tiny_family, "--out", tmp_path / "t", "--steps", "2", "--perceptual",
        "none", "--swap", "1", "--seed", "5", "--grid")  # fmt: skip
    translated = info_of(tmp_path / "t" / "face1-tiny-to-tiny-b.png")
    assert translated["source"]["sha256"] == sha["tiny"] and translated["models"][0]["sha256"] == sha["tiny-b"]
    assert translated["swap"] == {"tiny-b": 1} and translated["method"] == "bounded" and translated["seed"] == 5
    assert translated["input"] == "face1" and info_of(tmp_path / "t" / "tiny-to-tiny-b-grid.png")["inputs"] == ["face0", "face1"]

    zoo("invert", "tiny", tiny_family, "--out", tmp_path / "i", "--steps", "2", "--perceptual", "none", "--method", "projection")
    reconstruction = info_of(tmp_path / "i" / "face0-tiny-reconstruction.png")
    assert reconstruction["method"] == "projection" and reconstruction["models"][0]["sha256"] == sha["tiny"]

    zoo("distance-matrix", "--domains", "tiny,tiny-b", "--samples", "4", "--metric", "l1", "--seed", "3", "--out", tmp_path / "d")
    heatmap = info_of(tmp_path / "d.png")
    assert [model["sha256"] for model in heatmap["models"]] == [sha["tiny"], sha["tiny-b"]] and heatmap["seed"] == 3

    zoo("train-base", "grown", "--data", images, *TINY, *FAST, "--iters", "2")
    training = info_of(zoo_home / "runs" / "grown" / "samples" / "000002.png")
    assert training["command"] == "train" and training["model"] == "grown" and training["step"] == 2 and training["seed"] == 0

    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert read_provenance(plain) is None
    assert_user_error(zoo("info", plain, check=False), "plain.png", "holds no zoo provenance")


def test_demo_images_carry_their_provenance(emoji_family, tmp_path):  # noqa: F811 - the fixture
    out = tmp_path / "demo"
    zoo("demo", "--out", out, "--inputs", "2", "--styles", "1", "--steps", "2", "--samples", "4")
    pictures = sorted((out / "images").glob("*.png"))
    assert pictures and all(read_provenance(path) is not None for path in pictures)
    translation = info_of(out / "images" / "emoji-twemoji-style1.png")
    assert translation["command"] == "demo" and translation["steps"] == 2
    assert {model["name"] for model in translation["models"]} == {"emoji-noto", "emoji-twemoji", "emoji-openmoji"}
    assert info_of(out / "distances.png")["command"] == "distance-matrix"


def test_import_from_a_url(zoo_home, monkeypatch):
    url = (ROSINALITY / "rosinality_small.pt").resolve().as_uri()
    from zoo.files import sha256_file

    digest = sha256_file(ROSINALITY / "rosinality_small.pt")
    assert_user_error(zoo("import", url, "--name", "remote", check=False, ZOO_TEST_FILE_URLS="1"), "--sha256 HEX", "--allow-unpinned")
    assert_user_error(zoo("import", url, "--name", "remote", "--sha256", "0" * 64, check=False, ZOO_TEST_FILE_URLS="1"),
                      "sha256", "nothing was installed")  # fmt: skip
    assert_user_error(zoo("import", "http://example.com/x.pt", "--name", "remote", "--allow-unpinned", check=False), "https only")
    zoo("import", url, "--name", "remote", "--sha256", digest, ZOO_TEST_FILE_URLS="1")
    facts = json.loads(zoo("info", "remote", "--json").stdout)
    assert facts["lineage"]["source"] == url and facts["lineage"]["source_sha256"] == digest
    assert not any((zoo_home / "downloads").iterdir())


def test_tensorboard_log_holds_losses_augmentation_and_samples(images, zoo_home):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    zoo("train-base", "logged", "--data", images, *TINY, *FAST, "--iters", "4", "--log", "tensorboard")
    run = zoo_home / "runs" / "logged"
    zoo("train-base", "logged", "--data", images, *TINY, *FAST, "--iters", "6", "--resume", "--force", "--log", "tensorboard")
    events = EventAccumulator(str(run / "tensorboard")).Reload()  # both runs' event files
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = events.Scalars("loss/g_loss")
    assert [event.step for event in losses] == [record["step"] for record in logged] and logged[-1]["step"] == 6
    assert [event.value for event in losses] == pytest.approx([record["g_loss"] for record in logged], rel=1e-5)
    augment_p = [event.value for event in events.Scalars("augment/augment_p")]
    assert augment_p == pytest.approx([record["augment_p"] for record in logged], rel=1e-5) and augment_p[-1] > 0
    assert [image.step for image in events.Images("samples")] == [2, 4, 6]


def test_shell_completion_offers_commands_and_an_options_choices():
    def complete(words: str) -> list[str]:
        env = {**os.environ, "_ZOO_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
        run = "from zoo.cli import app; app(prog_name='zoo')"
        return subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, env=env, timeout=120).stdout.split()

    assert complete("zoo invert x --method ") == ["bounded", "projection", "encoder", "hybrid", "distilled", "auto"]
    assert complete("zoo distance-matrix --metric ss") == ["ssim"]
    assert {"translate", "train-base", "distance-matrix"} <= set(complete("zoo "))
