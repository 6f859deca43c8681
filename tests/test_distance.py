"""Model distance (the paper's Eq. 1): the cached distance matrix, variants of one domain, the files and the command."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_metrics import random_lpips
from typer.testing import CliRunner

from zoo.cli import app
from zoo.distance import (
    MARKER_COLOUR,
    choose_models,
    distance_matrix,
    load_named,
    save_distance_matrix,
    variant_distances,
)
from zoo.errors import ZooError
from zoo.metrics import PixelDistance, get_metric
from zoo.model import Generator, ModelConfig
from zoo.registry import Registry, install_model, load
from zoo.swap import level_resolutions, weight_swap

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_distance import naive_distance_matrix  # noqa: E402

CONFIG = ModelConfig(size=32, style_dim=16, n_mlp=2, channels={4: 16, 8: 12, 16: 8, 32: 8})
FAST = dict(samples=6, batch=4)  # a last batch of 2: uneven batches are covered


def generator(seed, mapping_of=None, config=CONFIG):
    torch.manual_seed(seed)
    made = Generator(config).eval()
    if mapping_of is not None:
        made.style.load_state_dict(mapping_of.style.state_dict())
    for layer in [made.conv1, *made.convs]:
        layer.noise.weight.data.fill_(0.2)  # the stored const noise shows in the images
    return made


@pytest.fixture
def zoo_models():
    """base; an identical copy; FC-FT `tuned` (base's mapping); FT `stranger` (own mapping). Names sort in this order."""
    base = generator(0)
    install_model("base", base, family="base", lineage={})
    install_model("base-copy", base, family="base", lineage={})
    install_model("stranger", generator(2), family="stranger", lineage={"base": "base"})
    install_model("tuned", generator(1, mapping_of=base), family="base", lineage={"base": "base"})
    return ["base", "base-copy", "stranger", "tuned"]


def loaded(names):
    return [load_named(name) for name in names]


def test_copies_are_at_distance_zero_and_cross_family_pairs_are_marked(zoo_models):
    result = distance_matrix(loaded(choose_models()), metric="l1", **FAST)
    matrix = result.matrix
    assert result.names == zoo_models and result.metric == "l1" and result.label.startswith("L1")
    assert matrix[0, 1] == 0 and torch.equal(matrix.diagonal(), torch.zeros(4))
    assert torch.equal(matrix, matrix.T)
    assert (matrix[~torch.eye(4, dtype=torch.bool)].count_nonzero()) == 10  # every other pair differs
    assert result.families == ["base", "base", "stranger", "base"]
    assert result.sha256 == [Registry().get(name)["sha256"] for name in zoo_models]
    assert result.cross_family_pairs() == [("base", "stranger"), ("base-copy", "stranger"), ("stranger", "tuned")]


def test_each_model_renders_each_batch_once_and_each_image_gets_features_once(zoo_models):
    class CountingL1(PixelDistance):
        images_featured = 0

        def features(self, images):
            self.images_featured += len(images)
            return images

    models = loaded(zoo_models)
    passes = []
    for model in models:
        model.generator.register_forward_hook(lambda module, args, output: passes.append(module))
    metric = CountingL1(1)
    distance_matrix(models, metric=metric, **FAST)
    assert len(passes) == 4 * 2 and all(passes.count(model.generator) == 2 for model in models)  # 2 batches of z
    assert metric.images_featured == 4 * 6


@pytest.mark.parametrize("metric", ["l2", "ssim", "random-lpips"])
def test_cached_matrix_equals_the_naive_pairwise_loop(zoo_models, metric):
    metric = random_lpips("alex") if metric == "random-lpips" else get_metric(metric)
    models = loaded(["base", "stranger", "tuned"])
    result = distance_matrix(models, metric=metric, seed=3, truncation=0.8, **FAST)
    naive = naive_distance_matrix([m.generator for m in models], metric, seed=3, truncation=0.8, **FAST)
    assert torch.equal(result.matrix, naive)
    assert (result.samples, result.seed, result.truncation) == (6, 3, 0.8)


def test_choosing_models_and_what_is_refused(zoo_models, tiny_config):
    assert choose_models(family="base") == ["base", "base-copy", "tuned"]
    assert choose_models(["tuned", "base", "tuned"]) == ["tuned", "base"]
    with pytest.raises(ZooError, match="not both"):
        choose_models(["base"], family="base")
    with pytest.raises(ZooError, match="at least two models \\(got base\\)"):
        distance_matrix(loaded(["base"]), metric="l1")
    with pytest.raises(ZooError, match="at least two models \\(got none\\)"):
        distance_matrix(loaded(choose_models(family="nobody")), metric="l1")
    with pytest.raises(ZooError, match="neither an installed model"):
        load_named("nowhere")
    install_model("small", generator(5, config=tiny_config), family="small", lineage={})
    with pytest.raises(ZooError, match="different resolutions or z sizes.*small 16px z16"):
        distance_matrix(loaded(["base", "small"]), metric="l1")


def test_variants_are_measured_against_the_base(zoo_models):
    result = variant_distances("tuned", ft="stranger", metric="l1", **FAST)
    assert result.names == ["base (base)", "FT (stranger)", "FC-FT (tuned)",
                            "FC-FT-LS l=1 (base's layers up to 8px)", "FC-FT-LS l=2 (base's layers up to 16px)"]  # fmt: skip
    to_base = result.matrix[0]
    assert to_base[0] == 0 and to_base[1:].min() > 0
    assert result.cross_family[0].tolist() == [False, True, False, False, False]
    assert result.sha256[3:] == [None, None]
    base, tuned = load("base").generator, load("tuned").generator
    for level in (1, 2):
        swapped = weight_swap(base, tuned, level_resolutions(level))
        expected = naive_distance_matrix([base, swapped], get_metric("l1"), seed=0, **FAST)[0, 1]
        assert to_base[2 + level] == expected
    assert len(set(to_base[2:].tolist())) == 3  # each swap level changes the model

    only_two = variant_distances("tuned", levels=[2], metric="l1", **FAST)
    assert only_two.names[-1].startswith("FC-FT-LS l=2") and len(only_two.names) == 3
    assert only_two.matrix[0, 1] == to_base[2]


@pytest.mark.parametrize(
    "call, message",
    [
        (dict(domain="tuned", levels=[3]), "swap level\\(s\\) \\[3\\]: a 32px model has levels \\[1, 2\\]"),
        (dict(domain="base"), "records no base model"),
        (dict(domain="stranger"), "no FC-FT model"),
        (dict(domain="tuned", ft="base-copy"), None),
    ],
)
def test_variants_refuse_what_is_no_fine_tune(zoo_models, call, message):
    if message is None:  # an FT model that records no base is taken as given
        assert variant_distances(**call, metric="l1", samples=2).names[1] == "FT (base-copy)"
        return
    with pytest.raises(ZooError, match=message):
        variant_distances(**call, metric="l1", samples=2)


def test_ft_of_another_base_is_refused(zoo_models):
    install_model("elsewhere", generator(3), family="elsewhere", lineage={"base": "stranger"})
    with pytest.raises(ZooError, match="fine-tuned from 'stranger', not from 'base'"):
        variant_distances("tuned", ft="elsewhere", metric="l1", samples=2)


def test_files_are_written_readable_and_never_overwritten(zoo_models, tmp_path):
    result = distance_matrix(loaded(zoo_models), metric="l1", **FAST)
    prefix = tmp_path / "out" / "matrix"
    csv_path, json_path, png_path = save_distance_matrix(result, prefix)

    rows = list(csv.reader(csv_path.read_text().splitlines()))
    assert rows[0] == [result.label, *zoo_models]
    assert [row[0] for row in rows[1:]] == zoo_models
    assert [[float(value) for value in row[1:]] for row in rows[1:]] == result.matrix.tolist()

    saved = json.loads(json_path.read_text())
    assert (saved["metric"], saved["label"], saved["samples"], saved["seed"]) == ("l1", result.label, 6, 0)
    assert saved["matrix"] == result.matrix.tolist()
    assert [model["sha256"] for model in saved["models"]] == result.sha256
    assert [model["family"] for model in saved["models"]] == result.families
    assert saved["cross_family_pairs"] == [["base", "stranger"], ["base-copy", "stranger"], ["stranger", "tuned"]]

    with Image.open(png_path) as image:
        assert image.mode == "RGB" and image.width > 4 * 64 and image.height > 4 * 64
        assert marker_pixels(image) > 0

    written = [path.read_bytes() for path in (csv_path, json_path, png_path)]
    with pytest.raises(ZooError, match="matrix.csv: already exists; pass --force"):
        save_distance_matrix(result, prefix)
    assert written == [path.read_bytes() for path in (csv_path, json_path, png_path)]
    one_family = distance_matrix(loaded(["base", "tuned"]), metric="l1", **FAST)
    save_distance_matrix(one_family, prefix, force=True)
    with Image.open(png_path) as image:
        assert marker_pixels(image) == 0
    assert json.loads(json_path.read_text())["cross_family_pairs"] == []


def marker_pixels(image):
    return sum(count for count, colour in image.getcolors(1 << 16) if colour == MARKER_COLOUR)


def test_command_prints_the_matrix_and_the_variants_and_writes_the_files(zoo_models, tmp_path):
    runner = CliRunner()
    prefix = tmp_path / "dm"
    matrix = runner.invoke(app, ["distance-matrix", "--family", "base", "--metric", "l1", "--samples", "4", "--out", str(prefix)])
    assert matrix.exit_code == 0, matrix.output
    assert "base-copy" in matrix.output and "stranger" not in matrix.output and "L1 (mean |a-b|" in matrix.output
    assert f"wrote {prefix}.csv, {prefix}.json, {prefix}.png" in " ".join(matrix.output.split())  # unwrapped
    assert json.loads(prefix.with_suffix(".json").read_text())["samples"] == 4
    assert prefix.with_suffix(".csv").is_file() and prefix.with_suffix(".png").is_file()

    variants = runner.invoke(app, ["distance-matrix", "--variants", "tuned", "--ft", "stranger", "--metric", "l1",
                                   "--samples", "4", "--out", str(tmp_path / "variants")])  # fmt: skip
    assert variants.exit_code == 0, variants.output
    for row in ("base (base)", "FT (stranger)", "FC-FT (tuned)", "FC-FT-LS l=2"):
        assert row in variants.output
    assert "* cross-family" in variants.output

    refused = runner.invoke(app, ["distance-matrix", "--ft", "stranger", "--metric", "l1"])
    assert isinstance(refused.exception, ZooError) and "--ft goes with --variants" in str(refused.exception)


def test_missing_lpips_backbone_is_a_one_line_error_with_exit_code_2(zoo_models, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "zoo", "distance-matrix", "--samples", "2", "--out", str(tmp_path / "dm")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "200", "ZOO_LPIPS_BACKBONE_DIR": str(empty), "TORCH_HOME": str(empty)},
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("zoo: error: ") and "alexnet-owt-7be5be79.pth" in lines[0] and "--metric ssim" in lines[0]
    assert not list(tmp_path.glob("dm.*"))
