"""Architecture, API and config behaviour of zoo.model beyond the rosinality parity numbers."""

import json
import math

import pytest
import torch
from conftest import ROSINALITY
from torch.nn import functional as F

from zoo import import_checkpoint, load
from zoo.model import Discriminator, Generator, ModelConfig, make_kernel, minibatch_stddev, upfirdn2d


def test_standard_256_config_matches_rosinality_keys_and_parameter_counts():
    config = ModelConfig.standard(256)
    with torch.device("meta"):
        generator, discriminator = Generator(config), Discriminator(config)
    reference = json.loads((ROSINALITY / "rosinality_256_keys.json").read_text())
    for module, part in ((generator, "generator"), (discriminator, "discriminator")):
        expected = {entry["key"]: entry["shape"] for entry in reference[part]}
        assert {key: list(t.shape) for key, t in module.state_dict().items()} == expected
    assert sum(p.numel() for p in generator.parameters()) == 30_034_338
    assert sum(p.numel() for p in discriminator.parameters()) == 28_864_129
    assert (config.n_latent, config.num_layers) == (14, 13)


def test_config_round_trips_through_json_and_validates():
    config = ModelConfig(size=32, style_dim=48, n_mlp=3, channels={4: 24, 8: 24, 16: 16, 32: 12}, conv_clamp=256)
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="power of two"):
        ModelConfig(size=48)
    with pytest.raises(ValueError, match=r"\[16\]"):
        ModelConfig(size=16, channels={4: 8, 8: 8})


def test_noise_modes(tiny_config):
    torch.manual_seed(0)
    generator = Generator(tiny_config).eval()
    for layer in generator.convs:
        layer.noise.weight.data.fill_(0.5)
    z = torch.randn(2, tiny_config.style_dim)
    with torch.no_grad():
        const_a, const_b = generator(z)[0], generator(z, noise="const")[0]
        random_a, random_b = generator(z, noise="random")[0], generator(z, noise="random")[0]
        explicit = generator(z, noise=generator.make_noise(2, generator=torch.Generator().manual_seed(1)))[0]
    assert torch.equal(const_a, const_b)
    assert (random_a - random_b).abs().max() > 1e-3
    assert (explicit - const_a).abs().max() > 1e-3
    with pytest.raises(ValueError, match="list of 5"):
        generator(z, noise=[None] * 2)


def test_truncation_uses_stored_center_or_computes_one(tiny_config):
    torch.manual_seed(0)
    generator = Generator(tiny_config).eval()
    w = generator.mapping(torch.randn(3, tiny_config.style_dim))
    assert generator.latent_avg is None
    truncated = generator.truncate(w, 0.5)
    center = generator.latent_avg
    assert center.shape == (tiny_config.style_dim,)
    torch.testing.assert_close(truncated, center + 0.5 * (w - center))
    generator.latent_avg = torch.zeros(tiny_config.style_dim)
    torch.testing.assert_close(generator.truncate(w, 0.25), 0.25 * w)
    assert generator.truncate(w, 1.0) is w


def test_features_are_returned_and_can_be_replaced(tiny_config):
    torch.manual_seed(0)
    base, target = Generator(tiny_config).eval(), Generator(tiny_config).eval()
    latent = base.mapping(torch.randn(2, tiny_config.style_dim)).unsqueeze(1).repeat(1, tiny_config.n_latent, 1)
    with torch.no_grad():
        image, features = base.synthesis(latent, return_features=True)
        assert {res: f.shape[-1] for res, f in features.items()} == {4: 4, 8: 8, 16: 16}
        assert [f.shape[1] for f in features.values()] == [16, 12, 8]
        same, _ = base.synthesis(latent, return_features=True, replace_features={8: features[8]})
        own = target.synthesis(latent)
        swapped = target.synthesis(latent, replace_features={8: features[8]})
    assert torch.equal(image, same)
    assert (swapped - own).abs().max() > 1e-2


def test_minibatch_stddev_uses_a_group_that_divides_the_batch():
    x = torch.randn(6, 5, 4, 4)
    out = minibatch_stddev(x)
    assert out.shape == (6, 6, 4, 4)
    first_group = x.view(3, 2, 5, 4, 4)[:, 0]
    expected = torch.sqrt(first_group.var(0, unbiased=False) + 1e-8).mean()
    torch.testing.assert_close(out[0, 5], expected.expand(4, 4))


def test_conv_clamp_bounds_every_activation(tiny_config):
    torch.manual_seed(0)
    config = ModelConfig(**{**tiny_config.to_dict(), "conv_clamp": 0.05})
    generator = Generator(config).eval()
    _, features = generator.synthesis(generator.mapping(torch.randn(2, 16)).unsqueeze(1).repeat(1, 6, 1), return_features=True)
    assert all(f.abs().max() <= 0.05 + 1e-7 for f in features.values())


def test_bfloat16_synthesis_stays_close_to_float32(zoo_home):
    """Activations and convolutions in bfloat16; the image, its RGB path and the gradients' direction as in float32."""
    import_checkpoint(ROSINALITY / "rosinality_small.pt", "tiny")
    generator = load("tiny").generator.eval()
    w = generator.mapping(torch.randn(4, 48, generator=torch.Generator().manual_seed(0))).detach()
    latent = w[:, None].repeat(1, generator.n_latent, 1).requires_grad_(True)
    image = generator.synthesis(latent)
    image.square().sum().backward()
    gradient, latent.grad = latent.grad, None
    reduced, features = generator.synthesis(latent, dtype=torch.bfloat16, return_features=True)
    reduced.square().sum().backward()
    assert reduced.dtype == torch.float32 and {f.dtype for f in features.values()} == {torch.bfloat16}
    difference = (reduced - image).abs()
    assert 0 < difference.mean() < 0.01 * image.std() and difference.max() < 0.1  # measured: 0.0067 (std 1.05), 0.073
    assert F.cosine_similarity(latent.grad.flatten(), gradient.flatten(), dim=0) > 0.999  # measured: 0.99992
    assert generator.double().synthesis(latent.double()).dtype == torch.float64  # default: the weights' dtype


def test_bfloat16_discriminator_stays_close_to_float32(tiny_config):
    """D's blocks in bfloat16 (as bfloat16 training runs them): logits and the gradient reaching the image as in float32."""
    torch.manual_seed(0)
    discriminator = Discriminator(tiny_config)
    images = torch.randn(8, 3, tiny_config.size, tiny_config.size, requires_grad=True)
    logits = discriminator(images)
    logits.sum().backward()
    gradient, images.grad = images.grad, None
    reduced = discriminator(images, dtype=torch.bfloat16)
    reduced.sum().backward()
    assert reduced.dtype == torch.float32 and images.grad.dtype == torch.float32
    difference = (reduced - logits).abs()
    assert 0 < difference.max() < 0.02 * logits.abs().max()
    assert F.cosine_similarity(images.grad.flatten(), gradient.flatten(), dim=0) > 0.99
    assert all(parameter.dtype == torch.float32 for parameter in discriminator.parameters())


def test_mean_latent_is_the_mean_of_mapped_samples(tiny_config):
    torch.manual_seed(0)
    generator = Generator(tiny_config)
    mean = generator.mean_latent(64, generator=torch.Generator().manual_seed(3))
    z = torch.randn(64, tiny_config.style_dim, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(mean, generator.mapping(z).mean(0, keepdim=True))
    assert math.isfinite(mean.abs().sum().item())


def reference_upfirdn2d(x, kernel, up, down, pad):
    """The definition, step by step: zero insertion, padding (negative crops), convolution, subsampling."""
    batch, channels, height, width = x.shape
    upsampled = x.new_zeros(batch, channels, height * up, width * up)
    upsampled[:, :, ::up, ::up] = x
    padded = F.pad(upsampled, [pad[0], pad[1], pad[0], pad[1]])
    weight = torch.flip(kernel, [0, 1])[None, None].repeat(channels, 1, 1, 1)
    return F.conv2d(padded, weight, groups=channels)[:, :, ::down, ::down]


@pytest.mark.parametrize(
    "taps, up, down, pad",
    [((1, 3, 3, 1), 2, 1, (2, 1)), ((1, 3, 3, 1), 1, 1, (1, 1)), ((1, 3, 3, 1), 1, 1, (2, 2)), ((1, 3, 3, 1), 1, 2, (2, 2)),
     ((1, 2, 1), 2, 1, (1, 1)), ((1, 3, 3, 1), 2, 1, (4, 0)), ((1, 3, 3, 1), 1, 1, (2, -1)), ((1, 3, 3, 1), 2, 2, (1, 2))],
)
def test_upfirdn2d_fast_paths_match_the_definition(taps, up, down, pad):
    torch.manual_seed(0)
    kernel = make_kernel(taps).double() * up**2
    kernel[0, -1] += 0.25  # an asymmetric kernel, so a missing or doubled flip shows
    x = torch.randn(2, 5, 7, 7, dtype=torch.float64, requires_grad=True)
    fast, reference = upfirdn2d(x, kernel, up, down, pad), reference_upfirdn2d(x, kernel, up, down, pad)
    assert fast.shape == reference.shape
    assert torch.allclose(fast, reference, atol=1e-12)
    grad = torch.randn_like(fast)
    assert torch.allclose(*(torch.autograd.grad(out, x, grad)[0] for out in (fast, reference)), atol=1e-12)
