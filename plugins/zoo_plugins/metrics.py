"""zoo's built-in image distances: LPIPS (the paper's model distance), SSIM, L1 and L2."""

from functools import partial

from zoo import hookimpl
from zoo.metrics import LPIPS_BACKBONES, MetricSpec, PixelDistance, SSIMDistance, create_lpips


@hookimpl
def register_metrics(register):
    for net in ("alex", "vgg"):
        title, filename, _ = LPIPS_BACKBONES[net]
        register(MetricSpec(
            name=f"lpips-{net}",
            description=f"LPIPS v0.1 with the {title} backbone" + (" (the paper's model distance)" if net == "alex" else ""),
            create=partial(create_lpips, net),
            needs=f"{filename} (torchvision ImageNet weights)",
        ))
    register(MetricSpec(name="ssim", description="1 - SSIM (Gaussian window 11, σ 1.5)", create=lambda device: SSIMDistance()))
    register(MetricSpec(name="l1", description="mean absolute pixel difference", create=lambda device: PixelDistance(1)))
    register(MetricSpec(name="l2", description="mean squared pixel difference", create=lambda device: PixelDistance(2)))
