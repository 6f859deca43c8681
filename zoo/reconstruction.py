"""What every inversion method shares (the optimising ones in zoo/inversion.py and the encoder's in zoo/encoder.py):
their settings (`InversionSettings`, with the methods and losses there are), the loss against the input images
(`ReconstructionLoss`, its perceptual term resolved by `resolve_perceptual`), the result (`InversionResult`) and
StyleGAN2's learning-rate schedule."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Callable

import torch

from .devices import check_precision
from .errors import ZooError, check_in_range
from .metrics import Metric, get_metric, lpips_if_available

PERCEPTUAL_CHOICES = ("auto", "lpips-vgg", "ssim", "none")
PIXEL_LOSSES = ("l1", "l2")
INVERSION_METHODS = ("bounded", "projection", "encoder", "hybrid")  # the last two: zoo/encoder.py
# What `zoo translate`/`zoo eval` accept besides: 'distilled' (no inversion: zoo/translator.py) and 'auto' (the target
# domain's recipe; `zoo invert` takes it as 'bounded').
TRANSLATION_METHODS = (*INVERSION_METHODS, "distilled", "auto")

StepCallback = Callable[[int, int], None]  # (steps done, total steps)


@dataclass
class InversionSettings:
    """How an image is inverted. `method` is 'bounded' (the paper's) or 'projection' (StyleGAN2's projector)."""

    method: str = "bounded"
    steps: int = 500
    lr: float = 0.1
    lr_rampup: float = 0.05  # fraction of the steps with a linear warm-up
    lr_rampdown: float = 0.25  # fraction of the steps with a cosine ramp-down
    directions: int = 0  # K of the bounded method: 0 = every direction (style_dim)
    w_plus: bool = False  # one latent per layer instead of one w
    optimize_noise: bool | None = None  # None: projection yes, bounded no
    noise_regularize: float = 1e5
    pixel_loss: str = "l1"
    pixel_weight: float = 1.0
    perceptual: str = "auto"  # lpips-vgg when its weights are on this machine, else ssim; or 'none'
    perceptual_weight: float = 1.0
    sefa_samples: int = 10_000
    perturbation: float = 0.05  # projection: initial latent noise, as a fraction of the latents' spread
    perturbation_ramp: float = 0.75  # projection: fraction of the steps over which the perturbation decays to 0
    precision: str = "auto"  # of the synthesis while optimising: float32, bfloat16, or auto (bfloat16 where native)
    encoder: str | None = None  # encoder and hybrid: an installed encoder or file (None: the one made for the model)
    translator: str | None = None  # distilled: an installed translator or file (None: the one made for the source)
    prior_weight: float = 0.01  # hybrid: weight of the Gaussian prior on W (zoo/encoder.py, WPrior)

    def __post_init__(self):
        if self.method not in TRANSLATION_METHODS:
            raise ZooError(f"--method {self.method!r}: use one of {', '.join(TRANSLATION_METHODS)}")
        check_in_range("--steps", self.steps, 1)
        check_in_range("--directions", self.directions, 0)
        check_in_range("sefa_samples", self.sefa_samples, 2)
        if not 0 < self.lr < math.inf:  # written so that NaN fails
            raise ZooError(f"--inversion-lr {self.lr}: must be a positive number")
        for name in ("lr_rampup", "lr_rampdown", "perturbation_ramp"):
            check_in_range(name, getattr(self, name), 0.0, 1.0)
        for name in ("noise_regularize", "pixel_weight", "perceptual_weight", "perturbation"):
            check_in_range(name, getattr(self, name), 0.0, sys.float_info.max)
        check_in_range("--prior-weight", self.prior_weight, 0.0, sys.float_info.max)
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ZooError(f"--pixel-loss {self.pixel_loss!r}: use l1 or l2")
        if self.perceptual not in PERCEPTUAL_CHOICES:
            raise ZooError(f"--perceptual {self.perceptual!r}: use one of {', '.join(PERCEPTUAL_CHOICES)}")
        check_precision(self.precision)
        if self.optimize_noise is None:
            self.optimize_noise = self.method == "projection"



def resolve_perceptual(choice: str) -> str:
    """'auto' -> 'lpips-vgg' when its backbone weights are on this machine (never downloaded), else 'ssim'."""
    return lpips_if_available("vgg") if choice == "auto" else choice


class ReconstructionLoss:
    """Per-image loss against fixed targets: pixel_weight · (L1 or L2) + perceptual_weight · perceptual distance.

    The targets' perceptual features (LPIPS activations, SSIM statistics) are computed once, not at every step.
    """

    def __init__(self, settings: InversionSettings, targets: torch.Tensor):
        self.settings, self.targets = settings, targets
        self.perceptual_name = resolve_perceptual(settings.perceptual)
        self.perceptual: Metric | None = None
        if self.perceptual_name != "none":
            self.perceptual = get_metric(self.perceptual_name, targets.device)
            with torch.no_grad():
                self.target_features = self.perceptual.features(targets)
        self.label = f"{settings.pixel_loss.upper()} + " + (self.perceptual.label if self.perceptual else "no perceptual term")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        difference = images - self.targets
        pixel = difference.abs() if self.settings.pixel_loss == "l1" else difference.square()
        loss = self.settings.pixel_weight * pixel.flatten(1).mean(1)
        if self.perceptual is not None:
            distance = self.perceptual.distance_between(self.perceptual.features(images), self.target_features)
            loss = loss + self.settings.perceptual_weight * distance
        return loss


def learning_rate(base_lr: float, progress: float, rampup: float, rampdown: float) -> float:
    """StyleGAN2's projector schedule: linear warm-up, then flat, then a cosine ramp-down to 0."""
    ramp = min(1.0, (1.0 - progress) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if rampup > 0:
        ramp *= min(1.0, progress / rampup)
    return base_lr * ramp


@dataclass
class InversionResult:
    """Per-image W+ latents (B, n_latent, D), the noise maps used, reconstructions and final losses."""

    latents: torch.Tensor
    noise: list[torch.Tensor] | None  # None: the model's stored (const) noise maps
    reconstructions: torch.Tensor
    losses: torch.Tensor
    settings: InversionSettings
    loss_label: str
    v: torch.Tensor | None = None  # bounded method: the SeFa coordinates (B, rows, K)
    bounds: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    seconds: float = 0.0  # wall time of the optimisation (SeFa space and loss set-up included)
    precision: str = "float32"  # the synthesis's dtype while optimising (settings.precision resolved on the device)

    def noise_spec(self):
        return "const" if self.noise is None else self.noise
