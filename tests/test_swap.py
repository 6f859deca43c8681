"""Layer swap: the paper's weight swap (a standalone model) and the authors' feature swap (at translation time)."""

import copy

import pytest
import references
import torch

from zoo.errors import ZooError
from zoo.model import Generator, ModelConfig
from zoo.swap import feature_swap, level_resolutions, swapped_keys, weight_swap

CONFIG = ModelConfig(size=32, style_dim=16, n_mlp=2, channels={4: 16, 8: 12, 16: 8, 32: 8})


@pytest.fixture
def pair():
    torch.manual_seed(0)
    base = Generator(CONFIG).eval()
    target = Generator(CONFIG).eval()
    target.style.load_state_dict(base.style.state_dict())
    for module in (base, target):
        for layer in [module.conv1, *module.convs]:
            layer.noise.weight.data.fill_(0.3)
    return base, target


def latents(generator, n=3):
    w = generator.mapping(torch.randn(n, CONFIG.style_dim, generator=torch.Generator().manual_seed(1)))
    return w.unsqueeze(1).repeat(1, CONFIG.n_latent, 1)


def test_levels_follow_the_paper():
    assert level_resolutions(0) == []
    assert level_resolutions(1) == [4, 8]
    assert level_resolutions(3) == [4, 8, 16, 32]
    with pytest.raises(ZooError):
        level_resolutions(-1)


@pytest.mark.parametrize("resolutions", [[4, 8], [4, 8, 16]])
def test_weight_swap_takes_exactly_the_chosen_layers_from_the_base(pair, resolutions):
    base, target = pair
    target_before = copy.deepcopy(target.state_dict())
    swapped = weight_swap(base, target, resolutions)
    keys = references.keys_by_resolution(target, resolutions)
    assert set(swapped_keys(target, resolutions)) == keys
    assert {"input.input", "conv1.conv.weight", "convs.1.activate.bias", "noises.noise_2"} <= keys
    assert not any(key.startswith(("to_rgb", "style.")) for key in keys)
    for key, value in swapped.state_dict().items():
        source = base if key in keys else target
        assert torch.equal(value, source.state_dict()[key]), key
    for key, value in target.state_dict().items():  # the target itself is untouched
        assert torch.equal(value, target_before[key]), key
    w = latents(base)
    with torch.no_grad():
        torch.testing.assert_close(swapped.synthesis(w), references.render(references.weight_swapped(base, target, keys), w))


@pytest.mark.parametrize("resolution", [4, 8, 16])
def test_feature_swap_matches_a_layer_by_layer_reference(pair, resolution):
    base, target = pair
    w = latents(base)
    with torch.no_grad():
        swapped = feature_swap(base, target, w, resolution)
        torch.testing.assert_close(swapped, references.feature_swapped(base, target, w, resolution), atol=1e-5, rtol=0)
        assert (swapped - references.render(target, w)).abs().max() > 1e-2  # the swap does change the image


def test_swapping_everything_but_torgb_and_no_level_are_the_extremes(pair):
    base, target = pair
    w = latents(base)
    with torch.no_grad():
        untouched = weight_swap(base, target, []).synthesis(w)
        assert torch.equal(untouched, target.synthesis(w))
        everything = weight_swap(base, target, CONFIG.resolutions)
        for name in ("to_rgb1", "to_rgbs"):
            getattr(everything, name).load_state_dict(getattr(base, name).state_dict())
        torch.testing.assert_close(everything.synthesis(w), base.synthesis(w))


def test_feature_swap_differs_from_weight_swap_only_through_the_rgb_skip(pair):
    base, target = pair
    w = latents(base)
    with torch.no_grad():
        by_features = feature_swap(base, target, w, 8)
        by_weights = weight_swap(base, target, [4, 8]).synthesis(w)
        assert (by_features - by_weights).abs().max() > 1e-3  # low-resolution ToRGB sees different features
        for name in ("to_rgb1", "to_rgbs"):
            getattr(target, name).load_state_dict(getattr(base, name).state_dict())
        # Replacing the features at every swapped resolution, with identical ToRGB layers, is the weight swap.
        _, base_features = base.synthesis(w, return_features=True)
        every_level = target.synthesis(w, replace_features={4: base_features[4], 8: base_features[8]})
        torch.testing.assert_close(every_level, weight_swap(base, target, [4, 8]).synthesis(w))


def test_incompatible_models_and_resolutions_are_refused(pair):
    base, _ = pair
    other = Generator(ModelConfig(size=16, style_dim=16, n_mlp=2, channels={4: 16, 8: 12, 16: 8}))
    with pytest.raises(ZooError, match="same architecture"):
        weight_swap(base, other, [4])
    with pytest.raises(ZooError, match="cannot swap resolution"):
        swapped_keys(base, [64])
    with pytest.raises(ZooError, match="cannot swap features at 64px"):
        feature_swap(base, base, latents(base), 64)
