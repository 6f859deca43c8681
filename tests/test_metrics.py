"""Every metric with known values: identical images give 0, hand-checked pairs give their numbers, LPIPS's cached
features give what the lpips package's own forward pass gives (with random backbone weights: plumbing only)."""

import lpips
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from zoo.errors import ZooError
from zoo.metrics import LPIPSDistance, get_metric

SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # (k · data range)², data range 1


def random_images(seed, n=3, size=16):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def constant_images(value, n=2, size=16):
    return torch.full((n, 3, size, size), float(value))


def random_lpips(net: str) -> LPIPSDistance:
    """zoo's LPIPS with a randomly initialised backbone, in torchvision's parameter names: plumbing checks only."""
    backbone = lpips.LPIPS(net=net, pnet_rand=True, verbose=False).net
    state = {"features." + name.split(".", 1)[1]: tensor for name, tensor in backbone.state_dict().items()}
    return LPIPSDistance(net, torch.device("cpu"), state)


@pytest.mark.parametrize("name", ["l1", "l2", "ssim"])
def test_identical_images_are_at_distance_zero(name):
    images = random_images(0)
    torch.testing.assert_close(get_metric(name)(images, images.clone()), torch.zeros(3), atol=1e-6, rtol=0)


def test_pixel_distances_of_constant_images():
    a, b = constant_images(0.5), constant_images(-0.25)
    torch.testing.assert_close(get_metric("l1")(a, b), torch.full((2,), 0.75))
    torch.testing.assert_close(get_metric("l2")(a, b), torch.full((2,), 0.5625))
    assert get_metric("l2").label.startswith("L2") and get_metric("l1").label.startswith("L1")


# SSIM's variances cancel badly in float32 (errors ~1e-4 on flat images), so known values are checked in float64.


def test_ssim_of_constant_images_is_its_luminance_term():
    # Flat images have no variance, so SSIM = (2 μa μb + C1) / (μa² + μb² + C1) on [0, 1] pixels: here 0.75 and 0.375.
    a, b = constant_images(0.5).double(), constant_images(-0.25).double()
    expected = 1 - (2 * 0.75 * 0.375 + SSIM_C1) / (0.75**2 + 0.375**2 + SSIM_C1)
    torch.testing.assert_close(get_metric("ssim")(a, b), torch.full((2,), expected, dtype=torch.float64))


def independent_ssim(image_a: np.ndarray, image_b: np.ndarray) -> float:
    """Wang et al.'s SSIM, mean over the map: Gaussian window σ 1.5 cut at 3.5 σ (11 taps), mirrored borders."""
    def blur(x):
        return gaussian_filter(x, sigma=(0, 1.5, 1.5), truncate=3.5, mode="mirror")

    a, b = (image_a + 1) / 2, (image_b + 1) / 2
    mean_a, mean_b = blur(a), blur(b)
    var_a, var_b, covariance = blur(a * a) - mean_a**2, blur(b * b) - mean_b**2, blur(a * b) - mean_a * mean_b
    ssim_map = ((2 * mean_a * mean_b + SSIM_C1) * (2 * covariance + SSIM_C2)) / (
        (mean_a**2 + mean_b**2 + SSIM_C1) * (var_a + var_b + SSIM_C2)
    )
    return float(ssim_map.mean())


def test_ssim_matches_an_independent_implementation():
    a = random_images(1, size=24).double()
    b = a * 0.6 + random_images(2, size=24).double() * 0.4  # related images, so SSIM is far from 0 and 1
    expected = torch.tensor([1 - independent_ssim(x.numpy(), y.numpy()) for x, y in zip(a, b)], dtype=torch.float64)
    distances = get_metric("ssim")(a, b)
    assert 0.2 < distances.min() and distances.max() < 0.9
    torch.testing.assert_close(distances, expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(get_metric("ssim")(a.float(), b.float()), expected.float(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_from_cached_features_equals_the_packages_forward_pass(net):
    metric = random_lpips(net)
    a, b = random_images(3, n=2, size=64), random_images(4, n=2, size=64)
    features_a = metric.features(a)
    cached = metric.distance_between(features_a, metric.features(b))
    assert cached.min() > 0
    torch.testing.assert_close(cached, metric.model(a, b).flatten())
    assert torch.equal(metric.distance_between(features_a, features_a), torch.zeros(2))


def test_lpips_upsamples_images_under_64_px():
    metric = random_lpips("alex")
    a, b = random_images(5, n=2, size=32), random_images(6, n=2, size=32)
    upsampled = [torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False) for x in (a, b)]
    torch.testing.assert_close(metric(a, b), metric.model(*upsampled).flatten())


def test_lpips_without_its_backbone_weights_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_LPIPS_BACKBONE_DIR", str(tmp_path / "backbones"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name, filename in (("lpips-alex", "alexnet-owt-7be5be79.pth"), ("lpips-vgg", "vgg16-397923af.pth")):
        with pytest.raises(ZooError) as raised:
            get_metric(name)
        message = str(raised.value)
        assert "\n" not in message and filename in message and "--metric ssim" in message


def test_unknown_metric_names_the_available_ones():
    with pytest.raises(ZooError, match="unknown metric 'lpips'.*lpips-alex, lpips-vgg, ssim"):
        get_metric("lpips")
