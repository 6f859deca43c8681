"""The per-family encoder (zoo/encoder.py), the encoder and hybrid inversion methods, and the model-free baselines."""

import pytest
import torch

from zoo import install_model, load
from zoo.baselines import channel_histograms, colour_transfer, matching_tables
from zoo.domains import describe, domain_status
from zoo.encoder import (
    EncoderTrainConfig,
    WPrior,
    build_encoder,
    encode,
    encoder_for,
    encoder_losses,
    installed_encoders,
    load_encoder,
    train_and_install_encoder,
    train_encoder,
)
from zoo.errors import ZooError
from zoo.files import sha256_file
from zoo.inversion import InversionSettings, invert
from zoo.registry import Registry


@pytest.fixture
def samples(model):
    z = torch.randn(4, model.generator.config.style_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        w = model.generator.mapping(z)
        return model.generator.synthesis(w[:, None].expand(-1, model.generator.n_latent, -1)), w


def small_run(iters, **options):
    options = {"batch": 8, "lr": 2e-3, "snapshot_every": iters, **options}
    return EncoderTrainConfig(iters=iters, **options)


def fixed_batch_losses(encoder, generator, config):
    z = torch.randn(64, generator.config.style_dim, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        return encoder_losses(encoder.eval(), generator, generator.mapping(z), config)


def test_training_lowers_the_image_loss_and_installs_an_encoder_for_its_base(model, zoo_home):
    config = small_run(40)
    torch.manual_seed(0)
    before = fixed_batch_losses(build_encoder(model), model.generator, config)
    run, entry = train_and_install_encoder("tiny", None, config)
    after = fixed_batch_losses(run.network, model.generator, config)
    assert after["image"] < 0.9 * before["image"], (before, after)
    assert entry["base"] == "tiny" and entry["base_sha256"] == sha256_file(model.info.path) and entry["family"] == model.info.family
    assert installed_encoders()["tiny-encoder"].sha256 == sha256_file(zoo_home / entry["file"])
    assert encoder_for(model) == "tiny-encoder"
    assert entry["lineage"]["iterations"] == 40 and entry["lineage"]["wall_time_seconds"] > 0
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(load_encoder("tiny-encoder", base=model).latents(images), run.network.latents(images), atol=1e-5)
    with pytest.raises(ZooError, match="already installed"):
        train_and_install_encoder("tiny", None, small_run(1))


def test_a_resumed_run_computes_what_an_unbroken_one_does(model):
    unbroken = train_encoder(model, "whole", small_run(6))
    train_encoder(model, "parts", small_run(3, snapshot_every=3))  # a finished run, then continued for longer

    def killed_after_step_4(step, total, metrics):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a continuation that dies between snapshots
        train_encoder(model, "parts", small_run(6, snapshot_every=3), resume=True, on_step=killed_after_step_4)
    resumed = train_encoder(model, "parts", small_run(6, snapshot_every=3), resume=True)
    assert resumed.steps == 6 and resumed.metrics == unbroken.metrics
    for (name, a), b in zip(unbroken.network.state_dict().items(), resumed.network.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
    with pytest.raises(ZooError, match="--resume"):
        train_encoder(model, "parts", small_run(6))
    with pytest.raises(ZooError, match="another base, backbone or settings"):
        train_encoder(model, "parts", small_run(8, lr=1e-2), resume=True)


def test_encoder_and_hybrid_methods(model, samples):
    images, _ = samples
    with pytest.raises(ZooError, match="train-encoder tiny"):
        invert(model, images, InversionSettings(method="encoder"))
    train_and_install_encoder("tiny", None, small_run(20))
    encoded = invert(model, images, InversionSettings(method="encoder"))
    assert torch.equal(encoded.latents, encode(load_encoder("tiny-encoder"), images))
    hybrid = invert(model, images, InversionSettings(method="hybrid", steps=30, lr=0.02, precision="float32"))
    assert (hybrid.losses < encoded.losses).all(), (hybrid.losses, encoded.losses)
    prior = WPrior(model.generator)
    anchored = invert(model, images, InversionSettings(method="hybrid", steps=30, lr=0.02, precision="float32", prior_weight=10.0))
    assert prior.penalty(anchored.latents).mean() < prior.penalty(hybrid.latents).mean()


def test_the_prior_is_about_one_for_the_models_own_samples_and_larger_far_away(model, samples):
    _, w = samples
    prior = WPrior(model.generator)
    typical = prior.penalty(w[:, None]).mean()
    assert 0.3 < typical < 3, typical
    assert prior.penalty(w[:, None] * 5).mean() > 10 * typical


def test_an_encoder_is_refused_for_another_base_and_the_encoders_table_survives_model_installs(model):
    train_and_install_encoder("tiny", None, small_run(1))
    install_model("tiny-copy", model.generator, family=model.info.family, lineage={"base": "tiny"}, force=True)
    assert "tiny-encoder" in Registry().table("encoders")
    with pytest.raises(ZooError, match="trained for tiny"):
        load_encoder("tiny-encoder", base=load("tiny-copy"))  # same weights, another checkpoint (its own name inside)


def test_an_installed_encoder_is_listed_described_and_confined_to_checkpoints(model, zoo_home):
    train_and_install_encoder("tiny", None, small_run(1))
    rows = {row["domain"]: row for row in domain_status(installed_only=True)}
    assert rows["tiny-encoder"]["state"] == "installed encoder" and rows["tiny-encoder"]["base"] == "tiny"
    assert rows["tiny-encoder"]["resolution"] == rows["tiny"]["resolution"] == model.generator.config.size
    assert "tiny-encoder" not in [path.stem for path in Registry().unregistered_files()]
    facts = describe("tiny-encoder")
    assert facts["verified against registry.toml"] is True and facts["family"] == model.info.family
    registry = zoo_home / "registry.toml"
    registry.write_text(registry.read_text().replace('file = "checkpoints/tiny-encoder.safetensors"', 'file = "../victim"'))
    with pytest.raises(ZooError, match=r"\[encoders.tiny-encoder\] has file = '../victim', which is not inside"):
        load_encoder("tiny-encoder")


def test_colour_transfer_maps_the_source_histogram_onto_the_target_one():
    random = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 16, 16, generator=random) * 2 - 1
    target = torch.rand(6, 3, 16, 16, generator=random) * 0.5 - 1  # darker: bytes 0-63
    transferred = colour_transfer(images, matching_tables(channel_histograms(images), channel_histograms(target)))
    assert transferred.max() <= -0.49
    ranks_before = images[0, 0].flatten().argsort()
    assert (transferred[0, 0].flatten()[ranks_before].diff() >= 0).all()  # monotone: the order of values is kept
    quantiles = torch.tensor([0.1, 0.5, 0.9])
    assert torch.allclose(transferred[:, 0].flatten().quantile(quantiles), target[:, 0].flatten().quantile(quantiles), atol=0.03)
    identity = colour_transfer(images, matching_tables(channel_histograms(images), channel_histograms(images)))
    assert torch.allclose(identity, images, atol=1 / 127.5 + 1e-6)


def test_the_emoji_colour_baseline_maps_noto_onto_each_styles_training_images():
    from zoo.baselines import colour_transfer_tables, training_images

    assert len(training_images("emoji-noto")) == 1030 and len(training_images("emoji-twemoji")) == 930
    tables = colour_transfer_tables("emoji-noto", "emoji-twemoji", 32)
    assert tables.shape == (3, 256) and (tables.diff(dim=1) >= 0).all() and tables[:, 255].tolist() == [255, 255, 255]
    with pytest.raises(ZooError, match="bundled data"):
        colour_transfer_tables("tiny", "emoji-twemoji", 32)


def test_the_cli_trains_an_encoder_and_translates_with_it(family, inputs, tmp_path, zoo_home):
    from test_cli import assert_user_error, zoo

    assert_user_error(zoo("translate", "--from", "tiny", "--to", "tiny-b", "--method", "encoder", "--out", tmp_path / "o", inputs,
                          check=False), "zoo train-encoder tiny")  # fmt: skip
    trained = zoo("train-encoder", "tiny", "--iters", "3", "--batch", "4")
    assert "installed encoder for tiny" in trained.stdout
    assert "tiny-encoder" in Registry().table("encoders")
    zoo("translate", "--from", "tiny", "--to", "tiny-b", "--method", "encoder", "--out", tmp_path / "out", inputs)
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["face0-tiny-to-tiny-b.png", "face1-tiny-to-tiny-b.png"]
    assert_user_error(zoo("train-encoder", "tiny", "--iters", "3", check=False), "already installed")
