"""Image distances as plugins: a MetricSpec names a metric and builds it; plugins register specs via `register_metrics`.

A Metric splits into `features(images)` (computed once per image and cacheable, e.g. LPIPS's normalised network
activations) and `distance_between(features_a, features_b)` (cheap, per pair), so a distance matrix over N models
extracts features N times, not N(N-1). Features are a tensor or a list/tuple of tensors with one row per image, so
they can be cached, selected and joined (`map_features`, `join_features`). Every distance is differentiable and 0 for
identical images.
Images are (B, 3, H, W) tensors in [-1, 1].
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch
from torch.nn import functional as F

from .errors import ZooError
from .plugins import registered_metrics
from .specs import Metric, MetricSpec  # noqa: F401 - the plugin API, re-exported

LPIPS_MIN_SIZE = 64  # LPIPS's networks need this much image; smaller images are upsampled (bilinear) first
LPIPS_BACKBONES = {
    # torchvision's ImageNet weights that lpips loads; the hex in each name is the start of the file's sha256
    "alex": ("AlexNet", "alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg": ("VGG-16", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
}
BACKBONE_DIR_VARIABLE = "ZOO_LPIPS_BACKBONE_DIR"


def map_features(function: Callable[[torch.Tensor], torch.Tensor], features: Any) -> Any:
    """`function` applied to every tensor of a metric's features: a tensor or a (nested) list or tuple of tensors, each
    with the images along its first dimension. Selects, e.g., the features of some images without recomputing them."""
    if isinstance(features, torch.Tensor):
        return function(features)
    if isinstance(features, (list, tuple)):
        return type(features)(map_features(function, item) for item in features)
    raise TypeError(f"metric features must be tensors or lists/tuples of tensors, not {type(features).__name__}")


def join_features(batches: list) -> Any:
    """The features of consecutive batches of images joined into the features of all of them, in order."""
    first = batches[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(batches)
    if isinstance(first, (list, tuple)):
        return type(first)(join_features(list(parts)) for parts in zip(*batches))
    raise TypeError(f"metric features must be tensors or lists/tuples of tensors, not {type(first).__name__}")


def get_metric(name: str, device: torch.device | str = "cpu") -> Metric:
    specs = registered_metrics()
    if name not in specs:
        raise ZooError(f"unknown metric {name!r}; available: {', '.join(sorted(specs))} (see `zoo plugins`)")
    return specs[name].create(torch.device(device))


# ---------------------------------------------------------------------------------------------------------------------
# Built-in metrics (registered by the zoo_plugins.metrics plugin, which is always loaded)


class PixelDistance(Metric):
    """Mean absolute (p=1) or squared (p=2) difference per image, on [-1, 1] pixels."""

    def __init__(self, power: int):
        self.power = power
        self.name = f"l{power}"
        self.label = "L1 (mean |a-b|, pixels in [-1, 1])" if power == 1 else "L2 (mean (a-b)², pixels in [-1, 1])"

    def distance_between(self, images_a, images_b):
        return (images_a - images_b).abs().pow(self.power).flatten(1).mean(1)


class SSIMDistance(Metric):
    """1 - SSIM (torchmetrics' definition; Gaussian window 11, sigma 1.5, on [0, 1] pixels): 0 for identical images.

    Its features are each image's pixels, local means and local variances, so a pair costs one blur (of a·b), not five.
    """

    name = "ssim"
    label = "1 - SSIM (Gaussian 11x11, σ 1.5)"

    def features(self, images):
        return ssim_statistics(images)

    def distance_between(self, features_a, features_b):
        return 1 - ssim_from_statistics(features_a, features_b)


SSIM_SIGMA = 1.5
SSIM_TAPS = 11  # the Gaussian cut at 3.5 σ on each side, as in Wang et al.'s reference code and torchmetrics
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # (k · data range)², pixels in [0, 1]


def ssim(images_a: torch.Tensor, images_b: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of two [-1, 1] batches, as torchmetrics defines it (Gaussian window of 11 taps, σ 1.5, mirrored
    borders, mean over the whole map). The window is applied as two matrix products (`gaussian_blur`), an order of
    magnitude faster on a CPU than convolutions, which matters when SSIM is a loss inside an optimisation loop."""
    return ssim_from_statistics(ssim_statistics(images_a), ssim_statistics(images_b))


def ssim_statistics(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What SSIM needs of one image alone: its pixels on [0, 1], their local means and their local variances."""
    pixels = (images + 1) / 2
    mean = gaussian_blur(pixels)
    variance = (gaussian_blur(pixels * pixels) - mean.square()).clamp_min(0)
    return pixels, mean, variance


def ssim_from_statistics(statistics_a: tuple, statistics_b: tuple) -> torch.Tensor:
    (a, mean_a, var_a), (b, mean_b, var_b) = statistics_a, statistics_b
    covariance = gaussian_blur(a * b) - mean_a * mean_b
    luminance = (2 * mean_a * mean_b + SSIM_C1) / (mean_a.square() + mean_b.square() + SSIM_C1)
    structure = (2 * covariance + SSIM_C2) / (var_a + var_b + SSIM_C2)
    return (luminance * structure).flatten(1).mean(1)


def gaussian_blur(images: torch.Tensor) -> torch.Tensor:
    """SSIM's Gaussian window over (..., H, W) with mirrored borders, as Mᵀ_H · x · M_W."""
    height, width = images.shape[-2:]
    return blur_matrix(height, images.dtype, images.device).T @ images @ blur_matrix(width, images.dtype, images.device)


@lru_cache(maxsize=16)
def blur_matrix(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(size, size) M with x · M = x's rows blurred by the Gaussian window, borders mirrored (reflect-padded) first."""
    pad = SSIM_TAPS // 2
    offsets = torch.arange(SSIM_TAPS, dtype=torch.float64) - pad
    taps = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    taps = taps / taps.sum()
    band = torch.zeros(size + 2 * pad, size, dtype=torch.float64)  # the window over the padded row: column j = output j
    columns = torch.arange(size)
    for tap, weight in enumerate(taps):
        band[columns + tap, columns] = weight
    padded_identity = F.pad(torch.eye(size, dtype=torch.float64)[None], (pad, pad), mode="reflect")[0]  # row i: e_i padded
    return (padded_identity @ band).to(dtype=dtype, device=device)


class LPIPSDistance(Metric):
    """LPIPS v0.1 (the `lpips` package): calibrated linear heads over a frozen ImageNet backbone.

    `features` are the unit-normalised activations of the five backbone stages, so distances between many images
    come from cached features. The backbone weights are torchvision's, read from a local file (see `backbone_file`),
    never downloaded behind the user's back.
    """

    def __init__(self, net: str, device: torch.device, backbone_state: dict[str, torch.Tensor]):
        import lpips

        self.name = f"lpips-{net}"
        self.label = f"LPIPS v0.1 ({LPIPS_BACKBONES[net][0]} backbone)"
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        model.net.load_state_dict(_lpips_backbone_state(model.net, backbone_state))
        self.model = model.eval().requires_grad_(False).to(device)

    def features(self, images):
        import lpips

        if min(images.shape[-2:]) < LPIPS_MIN_SIZE:
            images = F.interpolate(images, size=(LPIPS_MIN_SIZE, LPIPS_MIN_SIZE), mode="bilinear", align_corners=False)
        stages = self.model.net(self.model.scaling_layer(images))
        return [lpips.normalize_tensor(stage) for stage in stages]

    def distance_between(self, features_a, features_b):
        total = 0
        for head, stage_a, stage_b in zip(self.model.lins, features_a, features_b):
            total = total + head.model((stage_a - stage_b) ** 2).mean(dim=(1, 2, 3))
        return total


def backbone_file(net: str) -> Path:
    """Where the LPIPS backbone weights must be: $ZOO_LPIPS_BACKBONE_DIR, else torch's hub cache; else a ZooError."""
    title, filename, url = LPIPS_BACKBONES[net]
    places = [Path(os.environ[BACKBONE_DIR_VARIABLE])] if os.environ.get(BACKBONE_DIR_VARIABLE) else []
    places.append(Path(torch.hub.get_dir()) / "checkpoints")
    for place in places:
        if (place / filename).is_file():
            return place / filename
    raise ZooError(
        f"{places[-1] / filename}: LPIPS-{net} needs the {title} ImageNet weights, which are not on this machine; "
        f"download {url} into that folder (or into ${BACKBONE_DIR_VARIABLE}), or use --metric ssim"
    )


def lpips_if_available(net: str) -> str:
    """'lpips-NET' when its backbone weights are on this machine (never downloaded), else 'ssim': what an 'auto' metric
    or perceptual loss means."""
    try:
        backbone_file(net)
    except ZooError:
        return "ssim"
    return f"lpips-{net}"


def create_lpips(net: str, device: torch.device) -> LPIPSDistance:
    path = backbone_file(net)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise ZooError(f"{path}: unreadable ({type(error).__name__}); download it again") from None
    return LPIPSDistance(net, device, state)


def _lpips_backbone_state(network: torch.nn.Module, torchvision_state: dict[str, torch.Tensor]) -> dict:
    """lpips names torchvision's `features.{i}.*` as `slice{k}.{i}.*`; map one onto the other."""
    state = {}
    for name in network.state_dict():
        index_and_param = name.split(".", 1)[1]
        source = f"features.{index_and_param}"
        if source not in torchvision_state:
            raise ZooError(f"LPIPS backbone weights lack {source}; the file is not torchvision's {type(network).__name__}")
        state[name] = torchvision_state[source]
    return state
