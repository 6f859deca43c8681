"""The distilled feed-forward translator (zoo/translator.py) and the companions' registry tables (zoo/companions.py)."""

import pytest
import torch

from zoo import load
from zoo.domains import describe, domain_status
from zoo.errors import ZooError
from zoo.evaluation import EvaluationJob, prepare_evaluation, run_evaluation
from zoo.files import sha256_file
from zoo.inversion import InversionSettings, invert
from zoo.registry import Registry
from zoo.translation import resolve_method
from zoo.translator import (
    PairSampler,
    TranslatorTrainConfig,
    build_translator,
    load_translator,
    train_and_install_translator,
    train_translator,
    translate_feed_forward,
    translator_for,
    translator_loss,
)

TARGETS = ["tiny-b", "tiny-c"]  # the family fixture's members sharing tiny's mapping ('stranger' does not)


def small_run(iters, **options):
    return TranslatorTrainConfig(iters=iters, **{"batch": 8, "lr": 2e-3, "snapshot_every": iters, **options})


def models():
    return load("tiny"), {name: load(name) for name in TARGETS}


def held_out_loss(translator, base, targets):
    """The loss on pairs no training step draws (another seed), without augmentation."""
    sampler = PairSampler(base, targets, small_run(1, batch=32, seed=99, input_augment=0.0), appearance_layers=4)
    with torch.no_grad():
        return float(translator_loss(translator.eval(), sampler(0))["loss"])


def test_training_lowers_the_held_out_loss_and_installs_a_translator_for_its_base(family, zoo_home):
    base, targets = models()
    torch.manual_seed(0)
    before = held_out_loss(build_translator(base, TARGETS), base, targets)
    run, entry = train_and_install_translator("tiny", None, None, small_run(40))
    after = held_out_loss(run.network, base, targets)
    assert after < 0.8 * before, (before, after)
    assert entry["targets"] == TARGETS and entry["base_sha256"] == sha256_file(base.info.path) and entry["family"] == base.info.family
    assert Registry().table("translators")["tiny-translator"]["sha256"] == sha256_file(zoo_home / entry["file"])
    assert entry["lineage"]["iterations"] == 40 and entry["lineage"]["wall_time_seconds"] > 0
    assert translator_for(base, "tiny-c") == "tiny-translator" and translator_for(base, "stranger") is None
    rows = {row["domain"]: row for row in domain_status(installed_only=True)}
    assert rows["tiny-translator"]["state"] == "installed translator" and rows["tiny-translator"]["base"] == "tiny"
    facts = describe("tiny-translator")
    assert facts["verified against registry.toml"] is True and facts["targets"] == TARGETS
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    loaded = load_translator("tiny-translator", base=base)
    outputs = translate_feed_forward(loaded, images, "tiny-b")
    assert outputs.shape == images.shape and outputs.abs().max() <= 1
    assert torch.allclose(outputs, translate_feed_forward(run.network, images, "tiny-b"), atol=1e-5)
    assert not torch.allclose(outputs, translate_feed_forward(loaded, images, "tiny-c"), atol=1e-3)  # the target matters
    with pytest.raises(ZooError, match="trained for tiny"):
        load_translator("tiny-translator", base=load("tiny-b"))
    with pytest.raises(ZooError, match="knows tiny-b, tiny-c"):
        translate_feed_forward(loaded, images, "stranger")
    with pytest.raises(ZooError, match="already installed"):
        train_and_install_translator("tiny", None, None, small_run(1))
    (zoo_home / entry["file"]).write_bytes(b"changed")
    with pytest.raises(ZooError, match="sha256 differs"):
        load_translator("tiny-translator")


def test_a_resumed_run_computes_what_an_unbroken_one_does(family):
    base, targets = models()
    unbroken = train_translator(base, targets, "whole", small_run(6))

    def killed_after_step_4(step, total, metrics):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # dies between the snapshots of steps 3 and 6
        train_translator(base, targets, "parts", small_run(6, snapshot_every=3), on_step=killed_after_step_4)
    resumed = train_translator(base, targets, "parts", small_run(6, snapshot_every=3), resume=True)
    assert resumed.steps == 6 and resumed.metrics == unbroken.metrics
    for (name, a), b in zip(unbroken.network.state_dict().items(), resumed.network.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    with pytest.raises(ZooError, match="--resume"):
        train_translator(base, targets, "parts", small_run(6))
    with pytest.raises(ZooError, match="another base, targets or settings"):
        train_translator(base, targets, "parts", small_run(8, lr=1e-2), resume=True)


def test_appearance_codes_change_the_output_and_the_pairs_follow_them(family):
    base, targets = models()
    run = train_translator(base, targets, "styles", small_run(30, appearance_fraction=1.0))
    images = PairSampler(base, targets, small_run(1, seed=5), appearance_layers=4)(0).inputs
    codes = base.generator.mapping(torch.randn(2, base.generator.config.style_dim, generator=torch.Generator().manual_seed(1)))
    first, second = (translate_feed_forward(run.network, images, "tiny-b", code[None]) for code in codes)
    assert (first - second).abs().mean() > 1e-3
    pairs = PairSampler(base, targets, small_run(1, appearance_fraction=1.0), appearance_layers=4)(0)
    plain = PairSampler(base, targets, small_run(1, appearance_fraction=0.0), appearance_layers=4)(0)
    assert torch.equal(pairs.targets, plain.targets) and not torch.allclose(pairs.outputs, plain.outputs)


def test_methods_resolve_from_the_recipe_and_distilled_needs_no_inversion(family, inputs, tmp_path):
    assert resolve_method(None, ["tiny-b"]).method == "bounded"  # no recipe: the paper's
    assert resolve_method(InversionSettings(method="hybrid"), ["tiny-b"]).method == "hybrid"
    assert resolve_method(None, ["emoji-twemoji"]).method == "distilled"  # the emoji recipe's measured pick
    with pytest.raises(ZooError, match="translates without inverting"):
        invert(load("tiny"), torch.zeros(1, 3, 32, 32), InversionSettings(method="distilled"))
    train_and_install_translator("tiny", None, None, small_run(2))
    job = EvaluationJob(source="tiny", target="tiny-b", inputs=inputs, metric="ssim", styles=3, fid=False,
                        inversion=InversionSettings(method="distilled"))  # fmt: skip
    result = run_evaluation(prepare_evaluation(job))
    assert result.reconstruction_ssim is None and result.inversion["method"] == "distilled"
    assert 0 < result.similarity < 1 and result.style_diversity > 0


def test_the_cli_trains_a_translator_and_translates_with_it(family, inputs, tmp_path, zoo_home):
    from test_cli import assert_user_error, zoo

    assert_user_error(zoo("translate", "--from", "tiny", "--to", "tiny-b", "--method", "distilled", "--out", tmp_path / "o", inputs,
                          check=False), "zoo train-translator tiny")  # fmt: skip
    trained = zoo("train-translator", "tiny", "--iters", "3", "--batch", "4")
    assert "installed translator tiny -> tiny-b, tiny-c" in trained.stdout
    zoo("translate", "--from", "tiny", "--to", "tiny-b", "--method", "distilled", "--styles", "2", "--out", tmp_path / "out", inputs)
    names = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert names == sorted(f"face{i}-tiny-to-tiny-b{suffix}.png" for i in (0, 1) for suffix in ("", "-style1", "-style2"))
    assert_user_error(zoo("translate", "--from", "tiny", "--to", "stranger", "--method", "distilled", "--out", tmp_path / "s",
                          inputs, check=False), "mapping networks differ")  # fmt: skip


def test_saved_latents_are_rendered_when_the_recipe_translates_by_distillation(family, inputs, tmp_path, monkeypatch):
    from test_cli import zoo

    from zoo import translation
    from zoo.domains import Recipe
    from zoo.translation import TranslationJob, prepare_translation

    monkeypatch.setattr(translation, "recipe_defaults", lambda target: Recipe(base="tiny", iters=1, method="distilled"))
    assert resolve_method(None, ["tiny-b"]).method == "distilled"
    zoo("invert", "tiny", inputs / "face0.png", "--steps", "2", "--out", tmp_path / "latents")
    latents = sorted((tmp_path / "latents").glob("*.latent.safetensors"))
    job = TranslationJob(source="tiny", targets=["tiny-b"], out=tmp_path / "out", latent_files=latents)
    assert prepare_translation(job).job.inversion.method == "bounded"
    job = TranslationJob(source="tiny", targets=["tiny-b"], out=tmp_path / "out", latent_files=latents,
                         inversion=InversionSettings(method="distilled"))  # fmt: skip
    with pytest.raises(ZooError, match="not saved latents"):
        prepare_translation(job)
