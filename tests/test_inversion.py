"""SeFa space, bounded inversion and plain projection on the rosinality fixture model (32 px)."""

import numpy as np
import pytest
import references
import torch
from conftest import ROSINALITY

from zoo import import_checkpoint, load
from zoo.errors import ZooError
from zoo.home import zoo_home
from zoo.inversion import (
    InversionSettings,
    ReconstructionLoss,
    compute_sefa_space,
    invert,
    invert_in_batches,
    learning_rate,
    load_latent,
    modulation_matrix,
    project,
    resolve_perceptual,
    save_latent,
    sefa_space,
)


@pytest.fixture
def targets(model):
    """Three images the model itself made (truncation 0.7), so a perfect latent exists."""
    z = torch.randn(3, model.generator.config.style_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        images, _ = model.generator([z], truncation=0.7)
    return images


def test_sefa_directions_are_the_sorted_eigenvectors_of_ata(model):
    space = compute_sefa_space(model.generator, samples=2000)
    a = modulation_matrix(model.generator)
    channels = model.generator.conv1.conv.weight.shape[2] + sum(layer.conv.weight.shape[2] for layer in model.generator.convs)
    assert a.shape == (channels, 48)
    assert torch.allclose(a.norm(dim=1), torch.ones(channels), atol=1e-5)
    n = space.directions
    assert torch.allclose(n @ n.T, torch.eye(48), atol=1e-4)
    assert torch.allclose((a.T @ a) @ n.T, n.T * space.eigenvalues, atol=1e-3)
    assert torch.all(space.eigenvalues[:-1] >= space.eigenvalues[1:])
    # unit rows: the eigenvalues add up to the trace of AᵀA, i.e. the number of rows
    assert space.eigenvalues.sum().item() == pytest.approx(channels, rel=1e-4)


def test_sefa_matches_the_published_recipe_written_in_numpy(model):
    space = compute_sefa_space(model.generator, samples=2000)
    eigenvalues, directions = references.sefa_numpy(model.generator)
    np.testing.assert_allclose(space.eigenvalues.numpy(), eigenvalues, rtol=1e-4, atol=1e-4)
    # Directions are defined up to sign, and only where an eigenvalue stands apart from its neighbours.
    gaps = np.minimum(np.abs(np.diff(eigenvalues, prepend=np.inf)), np.abs(np.diff(eigenvalues, append=-np.inf)))
    distinct = gaps > 1e-3 * eigenvalues[0]
    assert distinct[:8].all()
    alignment = np.abs(np.sum(space.directions.double().numpy() * directions, axis=1))
    np.testing.assert_allclose(alignment[distinct], 1.0, atol=1e-3)


def test_sefa_bounds_are_the_extremes_of_the_models_own_samples(model):
    space = compute_sefa_space(model.generator, samples=2000)
    low, high = references.sefa_bounds(model.generator, space.directions, 2000)
    torch.testing.assert_close(space.low.double(), low, atol=1e-4, rtol=0)
    torch.testing.assert_close(space.high.double(), high, atol=1e-4, rtol=0)
    assert torch.all(low < 0) and torch.all(high > 0)


def test_sefa_space_is_cached_per_checkpoint_sha256(model):
    first = sefa_space(model, samples=1000)
    cached = list((zoo_home() / "cache" / "sefa").glob("*-1000.safetensors"))
    assert len(cached) == 1
    second = sefa_space(model, samples=1000)
    assert torch.equal(first.directions, second.directions) and torch.equal(first.high, second.high)
    cached[0].write_bytes(b"damaged")
    assert torch.equal(sefa_space(model, samples=1000).low, first.low)


def test_bounded_inversion_keeps_every_v_inside_its_range(model, targets):
    # A large learning rate drives coordinates into the walls, so the clamp must act.
    settings = InversionSettings(steps=40, lr=3.0, directions=8, w_plus=True)
    result = invert(model, targets, settings)
    space = sefa_space(model)
    low, high = (bound[:8].float() for bound in references.sefa_bounds(model.generator, space.directions, settings.sefa_samples))
    assert result.v.shape == (3, model.generator.n_latent, 8)
    coordinates = (result.latents - model.generator.truncation_center()) @ space.directions[:8].T
    assert torch.all(coordinates >= low - 1e-4) and torch.all(coordinates <= high + 1e-4)
    at_wall = ((coordinates - low).abs() < 1e-4) | ((coordinates - high).abs() < 1e-4)
    assert at_wall.any()
    expected = space.center + result.v @ space.directions[:8]
    assert torch.allclose(result.latents, expected, atol=1e-5)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_bounded_inversion_finds_the_generated_images(model, targets, precision):
    generator = model.generator
    with torch.no_grad():
        mean = generator.synthesis(generator.truncation_center().view(1, 1, -1).expand(3, generator.n_latent, -1))
    result = invert(model, targets, InversionSettings(steps=200, perceptual="ssim", precision=precision))
    assert result.precision == precision and result.reconstructions.dtype == torch.float32
    start_error = (mean - targets).abs().flatten(1).mean(1)
    error = (result.reconstructions - targets).abs().flatten(1).mean(1)
    assert torch.all(error < 0.05 * start_error), (error, start_error)
    assert torch.all(result.latents[:, 0] == result.latents[:, -1])  # W: one w on every layer
    assert result.loss_label == "L1 + 1 - SSIM (Gaussian 11x11, σ 1.5)"


def test_each_image_of_a_batch_has_its_own_latent(model, targets):
    settings = InversionSettings(steps=10, precision="float32")  # bfloat16 kernels need not be batch-invariant
    batched = invert(model, targets, settings)
    singles = torch.cat([invert(model, targets[i : i + 1], settings).latents for i in range(3)])
    assert torch.allclose(batched.latents, singles, atol=1e-4)
    assert (batched.latents[0] - batched.latents[1]).abs().max() > 0.1
    chunked = invert_in_batches(model, targets, settings, batch_size=2)
    assert torch.allclose(chunked.latents, singles, atol=1e-4) and chunked.v.shape[0] == 3


def test_projection_optimises_normalised_noise_from_the_mean_latent(model, targets):
    result = project(model, targets, InversionSettings(method="projection", steps=30, perceptual="none"))
    assert result.v is None and result.bounds is None and len(result.noise) == model.generator.num_layers
    for noise in result.noise:
        assert noise.shape[0] == 3
        assert torch.allclose(noise.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5)
        assert torch.allclose(noise.std(dim=(1, 2, 3)), torch.ones(3), atol=1e-4)
    assert result.loss_label == "L1 + no perceptual term"
    with pytest.raises(ValueError):
        project(model, targets, InversionSettings(method="bounded"))


def test_settings_refuse_an_unknown_precision():
    with pytest.raises(ZooError, match="--precision 'float16': use one of auto, float32, bfloat16"):
        InversionSettings(precision="float16")


def test_learning_rate_warms_up_and_ramps_down():
    assert learning_rate(0.1, 0.0, 0.05, 0.25) == 0
    assert learning_rate(0.1, 0.025, 0.05, 0.25) == pytest.approx(0.05)
    assert learning_rate(0.1, 0.5, 0.05, 0.25) == pytest.approx(0.1)
    assert learning_rate(0.1, 0.875, 0.05, 0.25) == pytest.approx(0.05)
    assert learning_rate(0.1, 1.0, 0.05, 0.25) == pytest.approx(0.0)


def test_perceptual_term_falls_back_to_ssim_without_lpips_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_LPIPS_BACKBONE_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert resolve_perceptual("auto") == "ssim"
    assert resolve_perceptual("lpips-vgg") == "lpips-vgg"
    with pytest.raises(ZooError, match="vgg16-397923af.pth"):
        ReconstructionLoss(InversionSettings(perceptual="lpips-vgg"), torch.zeros(1, 3, 16, 16))


def test_latent_files_round_trip_and_belong_to_their_model(model, targets, tmp_path, zoo_home):
    result = project(model, targets, InversionSettings(method="projection", steps=5))
    path = save_latent(tmp_path / "a.latent.safetensors", result, 1, model=model, source="a.png")
    saved = load_latent(path, model)
    assert torch.equal(saved.latent, result.latents[1])
    assert all(torch.equal(mine, theirs[1]) for mine, theirs in zip(saved.noise, result.noise))
    assert saved.metadata["source"] == "a.png" and saved.metadata["domain"] == "tiny"
    assert saved.metadata["precision"] == result.precision
    with pytest.raises(ZooError, match="already exists"):
        save_latent(path, result, 1, model=model, source="a.png")

    import_checkpoint(ROSINALITY / "rosinality_small_converted_legacy.pt", "other")
    with pytest.raises(ZooError, match="inverted with another model"):
        load_latent(path, load("other"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a latent")
    with pytest.raises(ZooError, match="not a readable latent file"):
        load_latent(tmp_path / "junk.safetensors", model)
