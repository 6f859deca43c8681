"""zoo's StyleGAN2, fed the imported rosinality fixture, reproduces rosinality's own outputs."""

import pytest
import torch
from conftest import FIXTURE_CONFIG, ROSINALITY

from zoo.importers import read_checkpoint
from zoo.model import Discriminator, Generator, ModelConfig

TOLERANCE = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def imported():
    checkpoint = read_checkpoint(ROSINALITY / "rosinality_small.pt")
    generator = Generator(checkpoint.config).eval()
    generator.load_state_dict(checkpoint.g_ema)
    discriminator = Discriminator(checkpoint.config).eval()
    discriminator.load_state_dict(checkpoint.discriminator)
    return generator, discriminator


def test_inferred_config_is_the_fixture_architecture():
    assert read_checkpoint(ROSINALITY / "rosinality_small.pt").config == ModelConfig(**FIXTURE_CONFIG)


@torch.no_grad()
def test_mapping_and_stored_noise(imported, reference):
    generator, _ = imported
    torch.testing.assert_close(generator.mapping(reference["z"]), reference["w_of_z"], **TOLERANCE)
    image, latents = generator([reference["z"]], noise="const", return_latents=True)
    torch.testing.assert_close(image, reference["img_plain"], **TOLERANCE)
    torch.testing.assert_close(latents, reference["latent_plain"], **TOLERANCE)


@torch.no_grad()
def test_explicit_noise(imported, reference):
    image, latents = imported[0]([reference["z"]], noise=reference["noise"])
    torch.testing.assert_close(image, reference["img_explicit_noise"], **TOLERANCE)
    assert latents is None


@torch.no_grad()
def test_mean_latent_and_truncation(imported, reference):
    generator, _ = imported
    torch.manual_seed(1234)
    mean = generator.mean_latent(4096)
    torch.testing.assert_close(mean, reference["mean_latent"], **TOLERANCE)
    image, _ = generator([reference["z"]], truncation=0.7, truncation_latent=mean)
    torch.testing.assert_close(image, reference["img_trunc"], **TOLERANCE)


@torch.no_grad()
def test_w_and_w_plus_inputs(imported, reference):
    generator, _ = imported
    torch.testing.assert_close(generator([reference["w"]], input_is_latent=True)[0], reference["img_w"], **TOLERANCE)
    torch.testing.assert_close(generator([reference["w_plus"]], input_is_latent=True)[0], reference["img_wplus"], **TOLERANCE)


@torch.no_grad()
def test_style_mixing(imported, reference):
    image, latents = imported[0]([reference["z"], reference["z2"]], inject_index=3, return_latents=True)
    torch.testing.assert_close(image, reference["img_mix"], **TOLERANCE)
    torch.testing.assert_close(latents, reference["latent_mix"], **TOLERANCE)


@torch.no_grad()
@pytest.mark.parametrize("name", ["plain", "explicit_noise", "trunc", "w", "wplus", "mix"])
def test_discriminator_logits(imported, reference, name):
    torch.testing.assert_close(imported[1](reference[f"img_{name}"]), reference[f"d_{name}"], **TOLERANCE)


@torch.no_grad()
def test_discriminator_batch_of_one_and_random_input(imported, reference):
    discriminator = imported[1]
    singles = torch.cat([discriminator(reference["img_plain"][i : i + 1]) for i in range(4)])
    torch.testing.assert_close(singles, reference["d_plain_single"], **TOLERANCE)
    torch.testing.assert_close(discriminator(reference["d_input"]), reference["d_input_logits"], **TOLERANCE)


def test_gradient_with_respect_to_w(imported, reference):
    w = reference["w"].clone().requires_grad_()
    image, _ = imported[0]([w], input_is_latent=True)
    image.square().mean().backward()
    torch.testing.assert_close(w.grad, reference["grad_w_mean_sq"], **TOLERANCE)


def test_converted_legacy_file_gives_the_same_generator(imported, reference):
    converted = read_checkpoint(ROSINALITY / "rosinality_small_converted_legacy.pt")
    generator = Generator(converted.config).eval()
    generator.load_state_dict(converted.g_ema)
    generator.latent_avg = converted.latent_avg
    with torch.no_grad():
        image, _ = generator([reference["z"]], truncation=0.7)
    torch.testing.assert_close(image, reference["img_trunc"], **TOLERANCE)
