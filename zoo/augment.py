"""Differentiable augmentation of everything the discriminator sees, and ADA's controller for its strength.

With few training images D memorises them and training collapses. Augmenting the real *and* the generated images
before D (DiffAugment, Zhao et al. 2020; ADA, Karras et al. 2020) stops that without the augmentations leaking into G,
as long as every op is differentiable (G's gradient flows back through them) and is applied with probability p < 1.

Ops, each applied to each image independently with probability p: x-flip (then a fair coin), integer translation by
up to 1/8 of the size (zero fill), brightness, saturation, contrast, and cutout of a square half the size.

Randomness is split from the ops: `draw_params` takes a torch.Generator and returns per-image parameters, `apply`
uses them. Training draws the parameters of a whole global batch and gives each distributed rank its rows, which keeps
runs deterministic and a K-process run equal to a single-process one.

`AugmentController` holds p: fixed ('diffaug': 1, 'off': 0) or adaptive ('ada'), where p moves toward the value at which
r_t = E[sign(D(real))] equals the target (0.6): r_t above target means D is overconfident on the reals, so p rises.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

TRANSLATE_RATIO = 0.125
CUTOUT_RATIO = 0.5


def draw_params(batch: int, p: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-image augmentation parameters (identity where an op was not chosen), on the generator's device."""
    device = generator.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(batch, *shape, generator=generator, device=device)

    def chosen() -> torch.Tensor:
        return uniform() < p

    ones = torch.ones(batch, device=device)
    return {
        "xflip": chosen() & (uniform() < 0.5),
        "translate": (uniform(2) * 2 - 1) * TRANSLATE_RATIO * chosen()[:, None],  # fraction of (width, height)
        "brightness": (uniform() - 0.5) * chosen(),  # added
        "saturation": torch.where(chosen(), uniform() * 2, ones),  # scales the distance to the pixel's grey
        "contrast": torch.where(chosen(), uniform() + 0.5, ones),  # scales the distance to the image mean
        "cutout_center": uniform(2),  # (x, y) as a fraction of the size
        "cutout": chosen(),
    }


def apply(images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Augment (B, 3, H, W) images with `draw_params` output of batch B; differentiable w.r.t. the images."""
    per_image = {name: value.to(images.device) for name, value in params.items()}

    def column(name: str) -> torch.Tensor:
        return per_image[name].to(images.dtype).view(-1, 1, 1, 1)

    x = torch.where(per_image["xflip"].view(-1, 1, 1, 1), images.flip(3), images)
    x = translate(x, per_image["translate"])
    x = x + column("brightness")
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * column("saturation") + grey
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * column("contrast") + mean
    return cutout(x, per_image["cutout_center"], per_image["cutout"])


def augment(images: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Draw parameters for this batch and apply them: the one-call form."""
    return apply(images, draw_params(images.shape[0], p, generator))


def translate(images: torch.Tensor, shift_fraction: torch.Tensor) -> torch.Tensor:
    """Shift each image by a whole number of pixels, filling with zeros; a gather, so gradients flow to the pixels."""
    batch, _, height, width = images.shape
    shift = (shift_fraction * torch.tensor([width, height], device=images.device)).round().long()
    # Source coordinate of every output pixel, in the zero-padded image; out-of-range sources land on the padding.
    rows = (torch.arange(height, device=images.device) - shift[:, 1:2] + 1).clamp(0, height + 1)
    cols = (torch.arange(width, device=images.device) - shift[:, 0:1] + 1).clamp(0, width + 1)
    padded = torch.nn.functional.pad(images, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    index = torch.arange(batch, device=images.device)[:, None, None]
    return padded[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cutout(images: torch.Tensor, center: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Zero a square of side CUTOUT_RATIO * size centred at `center` (fractions) in the chosen images."""
    _, _, height, width = images.shape
    ys = (torch.arange(height, device=images.device) + 0.5) / height
    xs = (torch.arange(width, device=images.device) + 0.5) / width
    inside_rows = (ys[None, :] - center[:, 1:2]).abs() < CUTOUT_RATIO / 2
    inside_cols = (xs[None, :] - center[:, 0:1]).abs() < CUTOUT_RATIO / 2
    hole = inside_rows[:, :, None] & inside_cols[:, None, :] & chosen[:, None, None]
    return images * (~hole).to(images.dtype)[:, None]


class AugmentController:
    """The augmentation probability p, fixed or adapted (ADA) from the sign of D's outputs on real images.

    Adaptive: every `interval` observed steps, r_t = mean sign(D(real)) over those steps (summed over all
    distributed ranks) is compared with `target`, and p moves by batch * interval / speed_images in that direction,
    so p can traverse [0, 1] in `speed_images` images (ADA's ada_kimg = 500). The sums stay on the device between
    adjustments, so observing costs no synchronisation.
    """

    def __init__(
        self,
        p: float = 0.0,
        *,
        adaptive: bool = False,
        target: float = 0.6,
        interval: int = 4,
        speed_images: float = 500_000,
        batch: int = 16,
    ):
        self.p, self.adaptive, self.target, self.interval = float(p), adaptive, target, interval
        self.step_size = batch * interval / speed_images
        self.steps_observed = 0
        self.sign_sum_and_count: torch.Tensor | None = None
        self.last_rt: float | None = None

    def observe(self, real_logits: torch.Tensor) -> None:
        """Record one step's D outputs on (this rank's) real images; adjusts p every `interval` calls."""
        if not self.adaptive:
            return
        logits = real_logits.detach().float()
        if self.sign_sum_and_count is None:
            self.sign_sum_and_count = torch.zeros(2)
        self.sign_sum_and_count = self.sign_sum_and_count.to(logits.device)  # a no-op after the first step
        self.sign_sum_and_count[0] += logits.sign().sum()
        self.sign_sum_and_count[1] += logits.numel()
        self.steps_observed += 1
        if self.steps_observed % self.interval == 0:
            self._adjust()

    def _adjust(self) -> None:
        totals = self.sign_sum_and_count
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(totals)
        sign_sum, count = totals.tolist()
        self.last_rt = sign_sum / count
        direction = (self.last_rt > self.target) - (self.last_rt < self.target)
        self.p = min(max(self.p + direction * self.step_size, 0.0), 1.0)
        totals.zero_()

    def state_dict(self) -> dict:
        totals = self.sign_sum_and_count
        return {
            "p": self.p,
            "steps_observed": self.steps_observed,
            "sign_sum_and_count": [0.0, 0.0] if totals is None else totals.tolist(),
            "last_rt": self.last_rt,
        }

    def load_state_dict(self, state: dict) -> None:
        self.p, self.steps_observed, self.last_rt = float(state["p"]), int(state["steps_observed"]), state["last_rt"]
        self.sign_sum_and_count = None
        if self.adaptive:
            self.sign_sum_and_count = torch.tensor(state["sign_sum_and_count"], dtype=torch.float32)
