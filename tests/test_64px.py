"""Everything downstream of the models at 64 px (issue 18): a tiny 64 px emoji family, its encoder and distilled
translator trained, through translation by every method, `zoo eval` and the distance matrix at every swap level a
64 px model has (l = 1, 2, 3), `zoo demo`, and the tables of docs/results.md (scripts/emoji_tables.py)."""

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import perturbed, save_samples
from PIL import Image
from test_cli import zoo
from zoo_plugins.emoji import DATA

from zoo import install_model
from zoo.cli.measure import parse_levels
from zoo.distance import save_distance_matrix, variant_distances
from zoo.domains import domain_status
from zoo.encoder import EncoderTrainConfig, load_encoder, train_and_install_encoder
from zoo.inversion import InversionSettings
from zoo.model import Generator, ModelConfig
from zoo.translation import TranslationJob, prepare_translation, run_translation
from zoo.translator import TranslatorTrainConfig, load_translator, train_and_install_translator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import emoji_tables  # noqa: E402

CONFIG = ModelConfig(size=64, style_dim=16, n_mlp=2, channels={4: 16, 8: 12, 16: 8, 32: 8, 64: 8})
STYLES = ["emoji-twemoji", "emoji-openmoji"]
METHODS = ("bounded", "projection", "encoder", "hybrid", "distilled")


@pytest.fixture
def family64(zoo_home):
    """emoji-noto and two styles at 64 px sharing its mapping (installed with force: the plugin may still declare
    32 px), and emoji-twemoji-ft, fine-tuned with its mapping (the FT ablation); returns the base generator."""
    torch.manual_seed(0)
    base = Generator(CONFIG).eval()
    install_model("emoji-noto", base, family="emoji", lineage={"base": None}, force=True)
    for seed, name in enumerate(STYLES, start=1):
        install_model(name, perturbed(base, 0.05, seed), family="emoji", lineage={"base": "emoji-noto"}, force=True)
    install_model("emoji-twemoji-ft", perturbed(base, 0.05, 9, mapping_too=True), family="emoji-twemoji-ft",
                  lineage={"base": "emoji-noto"})  # fmt: skip
    return base


def tiny_companions():
    train_and_install_encoder("emoji-noto", None, EncoderTrainConfig(iters=2, batch=4, snapshot_every=2))
    train_and_install_translator("emoji-noto", None, None, TranslatorTrainConfig(iters=2, batch=4, snapshot_every=2))


def sizes(folder: Path) -> set[tuple[int, int]]:
    return {Image.open(path).size for path in folder.rglob("*.png")}


def test_zoo_list_shows_the_installed_models_resolution(family64):
    rows = {row["domain"]: row for row in domain_status(installed_only=True)}
    assert {rows[name]["resolution"] for name in ["emoji-noto", *STYLES]} == {64}


def test_every_translate_method_at_64px(family64, tmp_path):
    tiny_companions()
    assert load_encoder("emoji-noto-encoder").config.image_size == 64
    translator = load_translator("emoji-noto-translator").config
    assert translator.image_size == 64 and translator.widths == [16, 32, 64, 128, 128]  # down to a 4 px bottleneck
    inputs = save_samples(family64, tmp_path / "inputs", 2)
    outputs = {}
    for method in METHODS:
        job = TranslationJob(source="emoji-noto", targets=["emoji-twemoji"], out=tmp_path / method, inputs=[inputs], styles=1,
                             swap=1, inversion=InversionSettings(method=method, steps=2))  # fmt: skip
        written = run_translation(prepare_translation(job))
        assert len(written) == 4 and sizes(tmp_path / method) == {(64, 64)}, method
        outputs[method] = Image.open(tmp_path / method / "face0-emoji-noto-to-emoji-twemoji.png").tobytes()
    assert len(set(outputs.values())) == len(METHODS)  # five different ways
    reference = TranslationJob(source="emoji-noto", targets=["emoji-twemoji"], out=tmp_path / "ref", inputs=[inputs / "face0.png"],
                               reference=inputs / "face1.png", inversion=InversionSettings(method="distilled"))  # fmt: skip
    assert [path.name for path in run_translation(prepare_translation(reference))] == [
        "face0-emoji-noto-to-emoji-twemoji.png", "face0-emoji-noto-to-emoji-twemoji-ref-face1.png"]  # fmt: skip


def test_swap_all_is_every_level_of_the_models_resolution(family64, model):
    assert parse_levels("all", "emoji-noto") == [0, 1, 2, 3]
    assert parse_levels("all", "tiny") == [0, 1, 2]  # the 32 px fixture
    assert parse_levels("0,2", "tiny") == [0, 2]


def test_table_one_at_64px_has_the_ft_fc_ft_and_every_swap_level(family64, tmp_path):
    result = variant_distances("emoji-twemoji", ft="emoji-twemoji-ft", metric="ssim", samples=6, batch=3)
    save_distance_matrix(result, tmp_path / "table1-twemoji")
    distances = result.matrix[0, 2:].tolist()  # FC-FT, then FC-FT-LS l = 1, 2, 3
    assert distances == sorted(distances, reverse=True) and distances[-1] > 0  # each level puts more of the base back
    table = emoji_tables.table_one(tmp_path)
    assert "| style | FT | FC-FT | FC-FT-LS l=1 | FC-FT-LS l=2 | FC-FT-LS l=3 |" in table
    assert f"| twemoji | {result.matrix[0, 1]:.4f} | {distances[0]:.4f} |" in table
    shutil.copy(tmp_path / "table1-twemoji.json", tmp_path / "table1-zz.json")
    other = json.loads((tmp_path / "table1-zz.json").read_text())
    other["models"] = other["models"][:-1]  # a run at 32 px, or another --variants choice: no l = 3
    (tmp_path / "table1-zz.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="table1-zz.json: variants FT, FC-FT, FC-FT-LS l=1, FC-FT-LS l=2, where"):
        emoji_tables.table_one(tmp_path)


def emoji_pairs(folder: Path, style: str, stems: list[str]) -> Path:
    folder.mkdir(parents=True)
    for stem in stems:
        shutil.copy(DATA / style / f"{stem}.png", folder / f"{stem}.png")
    return folder


def test_eval_every_swap_level_and_table_two_at_64px(family64, tmp_path):
    stems = sorted(path.stem for path in (DATA / "noto").glob("*.png"))[:3]
    inputs, pairs = emoji_pairs(tmp_path / "noto", "noto", stems), emoji_pairs(tmp_path / "twemoji", "twemoji", stems)
    zoo("eval", "--from", "emoji-noto", "--to", "emoji-twemoji", "--inputs", inputs, "--pairs", pairs, "--swap", "all",
        "--method", "bounded", "--steps", "2", "--metric", "ssim", "--no-fid", "--json", tmp_path / "table2.json")  # fmt: skip
    evaluations = json.loads((tmp_path / "table2.json").read_text())
    assert [item["translation"]["swap"] for item in evaluations] == [0, 1, 2, 3]
    assert len({item["similarity"] for item in evaluations}) == 4  # four different translations of one inversion
    table = emoji_tables.table_two(tmp_path)
    assert "swap levels l = 0, 1, 2, 3" in table and "inversion: bounded, 2 steps" in table
    for item in evaluations:
        assert f"| twemoji | {item['translation']['swap']} | {item['paired']['distance']:.4f} |" in table


def test_demo_at_64px(family64, tmp_path):
    out = tmp_path / "demo"
    tiny_companions()
    zoo("demo", "--out", out, "--inputs", "2", "--styles", "1", "--samples", "4")
    page = (out / "index.html").read_text()
    assert "distilled translator" in page and sizes(out / "images") == {(64, 64)}
    assert re.search(r"img \{ width: 128px; height: 128px;", page) and "td img + img { width: 64px;" in page  # 2x, truth 1x
