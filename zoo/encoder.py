"""Image -> latent in one forward pass: an encoder per family, trained on its base model's own samples (issue 17).

The network (`Encoder`) is a timm backbone (created with pretrained=False: nothing is downloaded) with two linear
heads, e4e-style but in Z: a z code and per-layer z offsets, each row z + offset_i sent through the base's own mapping
network (frozen, carried in the file), so every row of ŵ+ is a w the model samples from (in distribution by
construction; the offsets let the rows differ). It trains on z -> w = f(z) -> G(w) -> encoder -> ŵ+, with

- a latent loss: mean squared whitened difference between every row of ŵ+ and w;
- an image loss: L1 + (1 - SSIM) between G(ŵ+) and G(w);
- an offset penalty: mean squared z offset relative to the code's, which holds the rows of ŵ+ near one w.

Files: `checkpoints/NAME.safetensors` (weights; metadata: backbone, sizes, base name and sha256, family, lineage),
registered in registry.toml's `[encoders.NAME]` table. Runs: `<zoo home>/runs/NAME/` (resumable; the loop is
zoo/companion_training.py's).

Inversion methods built on it (`InversionSettings.method`): `encoder` (one forward pass) and `hybrid` (the encoder's
latent, then a short optimisation under a Gaussian prior in the whitened, leaky-ReLU-inverted W space of II2S).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .checkpoint import ZooModel
from .companion_training import CompanionRun, CompanionTraining, RunSettings, train_companion
from .companions import Companion, install_companion, installable_name, installed, load_companion, matching
from .errors import ZooError
from .files import sha256_file
from .metrics import ssim
from .model import EqualLinear, Generator, PixelNorm
from .reconstruction import InversionResult, ReconstructionLoss
from .reconstruction import learning_rate as schedule
from .registry import ENCODERS, CompanionEntry, Registry, load
from .training.loop import ProgressCallback

ENCODER_FORMAT = "zoo-encoder"
ENCODER_FORMAT_VERSION = "1"
DEFAULT_BACKBONE = "resnet10t"
# Narrow widths for the default backbone: ~1.3 M parameters (a 6 MB file with its heads), trainable on a CPU.
BACKBONE_OPTIONS = {"resnet10t": {"channels": [32, 64, 128, 256]}}
WHITENING_SAMPLES = 10_000
MAPPING_SLOPE = 0.2  # the mapping network's leaky ReLU; its inverse has slope 1 / 0.2

# ---------------------------------------------------------------------------------------------------------------------
# The network


@dataclass
class EncoderConfig:
    backbone: str = DEFAULT_BACKBONE
    backbone_options: dict | None = None  # None: BACKBONE_OPTIONS for the backbone, else timm's defaults
    image_size: int = 32  # the base model's resolution
    input_size: int = 64  # the backbone's input: images are resized to it
    style_dim: int = 128
    n_latent: int = 8
    n_mlp: int = 4  # the base's mapping network, which the encoder carries (frozen)
    lr_mlp: float = 0.01

    def options(self) -> dict:
        return BACKBONE_OPTIONS.get(self.backbone, {}) if self.backbone_options is None else self.backbone_options


class Encoder(nn.Module):
    """(B, 3, H, W) images in [-1, 1] -> a z code (B, D) and per-layer z offsets (B, n_latent, D); `latents` maps each
    row z + offset through the base's own (frozen) mapping network, so every row of the W+ it returns is a w the
    model samples from: in distribution by construction."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        import timm

        self.config = config
        try:
            self.backbone = timm.create_model(config.backbone, pretrained=False, num_classes=0, **config.options())
        except (RuntimeError, TypeError, ValueError) as error:
            raise ZooError(f"--backbone {config.backbone}: timm cannot build it ({str(error).splitlines()[0]}); "
                           "try resnet10t or mobilenetv3_small_100") from None  # fmt: skip
        features = self.backbone.num_features
        self.code = nn.Linear(features, config.style_dim)
        self.offsets = nn.Linear(features, config.n_latent * config.style_dim)
        with torch.no_grad():  # start with small offsets
            self.offsets.weight.mul_(0.1)
            self.offsets.bias.zero_()
        layers = [EqualLinear(config.style_dim, config.style_dim, lr_mul=config.lr_mlp, activation=True) for _ in range(config.n_mlp)]
        self.mapping = nn.Sequential(PixelNorm(), *layers).requires_grad_(False)
        self.register_buffer("scale", torch.ones(config.style_dim))  # the spread of the base's w, per dimension

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.config.input_size
        if images.shape[-1] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
        features = self.backbone(images)
        return self.code(features), self.offsets(features).view(-1, self.config.n_latent, self.config.style_dim)

    def latents(self, images: torch.Tensor) -> torch.Tensor:
        code, offsets = self(images)
        return self.to_w_plus(code, offsets)

    def to_w_plus(self, code: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """(B, n_latent, D): row i is f(code + offsets_i)."""
        z_plus = code[:, None] + offsets
        return self.mapping(z_plus.flatten(0, 1)).view(z_plus.shape)


@torch.no_grad()
def latent_spread(generator: Generator, samples: int = WHITENING_SAMPLES, seed: int = 0) -> torch.Tensor:
    """The per-dimension spread of the base's w = f(z): the units of the encoder's latent loss."""
    z = torch.randn(samples, generator.config.style_dim, generator=torch.Generator().manual_seed(seed))
    return generator.mapping(z.to(generator.input.input.device)).std(0).clamp_min(1e-6)


def build_encoder(base: ZooModel, backbone: str = DEFAULT_BACKBONE) -> Encoder:
    generator = base.generator
    size = generator.config.size
    config = EncoderConfig(backbone=backbone, image_size=size, input_size=max(64, size), style_dim=generator.config.style_dim,
                           n_latent=generator.n_latent, n_mlp=generator.config.n_mlp, lr_mlp=generator.config.lr_mlp)  # fmt: skip
    encoder = Encoder(config).to(generator.input.input.device)
    encoder.mapping.load_state_dict(generator.style.state_dict())
    encoder.scale = latent_spread(generator)
    return encoder


# ---------------------------------------------------------------------------------------------------------------------
# Training


@dataclass
class EncoderTrainConfig(RunSettings):
    iters: int = 4000
    batch: int = 32
    lr: float = 1e-3
    latent_weight: float = 1.0
    image_weight: float = 1.0
    offset_weight: float = 0.1
    snapshot_every: int = 500
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        if min(self.latent_weight, self.image_weight, self.offset_weight) < 0:
            raise ZooError("loss weights must be >= 0")


def encoder_losses(encoder: Encoder, generator: Generator, w: torch.Tensor, config: EncoderTrainConfig) -> dict[str, torch.Tensor]:
    """The three loss terms on a batch of the base's own w (its images rendered with the stored noise)."""
    with torch.no_grad():
        images = generator.synthesis(w[:, None].expand(-1, generator.n_latent, -1))
    code, offsets = encoder(images)
    latents = encoder.to_w_plus(code, offsets)
    latent = ((latents - w[:, None]) / encoder.scale).square().mean()
    reconstructions = generator.synthesis(latents)
    image = (reconstructions - images).abs().mean() + (1 - ssim(reconstructions, images)).mean()
    offset = offsets.square().mean() / code.square().mean().detach().clamp_min(1e-8)  # relative to the code's size
    total = config.latent_weight * latent + config.image_weight * image + config.offset_weight * offset
    return {"loss": total, "latent": latent, "image": image, "offset": offset}


def step_latents(generator: Generator, config: EncoderTrainConfig, step: int) -> torch.Tensor:
    """The batch of w for `step`: drawn from (seed, step) alone, so a resumed run sees what an unbroken one would."""
    random = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    z = torch.randn(config.batch, generator.config.style_dim, generator=random)
    with torch.no_grad():
        return generator.mapping(z.to(generator.input.input.device))


def train_encoder(base: ZooModel, name: str, config: EncoderTrainConfig, *, backbone: str = DEFAULT_BACKBONE,
                  resume: bool = False, on_step: ProgressCallback | None = None) -> CompanionRun:  # fmt: skip
    """Train an encoder for `base` (snapshots in <zoo home>/runs/NAME; `resume` continues from the last one)."""
    generator = base.generator.eval().requires_grad_(False)
    training = CompanionTraining(
        kind="encoder", base=base, config=config, build=lambda: build_encoder(base, backbone),
        losses=lambda encoder, step: encoder_losses(encoder, generator, step_latents(generator, config, step), config),
        identity={"backbone": backbone}, identity_words="base, backbone or settings",
    )  # fmt: skip
    return train_companion(name, training, resume=resume, on_step=on_step)


# ---------------------------------------------------------------------------------------------------------------------
# Files and the registry


def install_encoder(name: str, encoder: Encoder, base: str, *, lineage: dict, force: bool = False,
                    registry: Registry | None = None) -> dict:  # fmt: skip
    """Save checkpoints/NAME.safetensors and record it in registry.toml's encoders table (zoo/companions.py)."""
    companion = Companion(ENCODERS, "encoder", ENCODER_FORMAT, encoder, asdict(encoder.config))
    return install_companion(companion, name, base, lineage=lineage, extra={"backbone": encoder.config.backbone}, force=force,
                             registry=registry)  # fmt: skip


def installed_encoders(registry: Registry | None = None) -> dict[str, CompanionEntry]:
    return installed(ENCODERS, registry)


def encoder_for(base: ZooModel, registry: Registry | None = None) -> str | None:
    """The installed encoder made for exactly this base checkpoint (same sha256), or None."""
    matches = matching(ENCODERS, sha256_file(base.info.path), registry)
    return matches[0] if matches else None


def load_encoder(name_or_path: str | Path, base: ZooModel | None = None, registry: Registry | None = None) -> Encoder:
    """An installed encoder by name (sha256 checked) or a file; with `base`, it must have been trained for that base."""
    return load_companion(ENCODERS, name_or_path, ENCODER_FORMAT, lambda config: Encoder(EncoderConfig(**config)), base=base,
                          kind="encoder", command="train-encoder", registry=registry)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Inversion with the encoder


@torch.no_grad()
def encode(encoder: Encoder, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(B, n_latent, D) W+ latents in one forward pass per chunk."""
    return torch.cat([encoder.latents(chunk) for chunk in images.split(batch_size)])


class WPrior:
    """II2S's Gaussian prior on W: undo the mapping's last leaky ReLU (slope 5 on negatives), then whiten by the PCA
    of the model's own samples; `penalty(latents)` is the mean squared whitened coordinate per image (1 for a
    typical sample, so a weight of 1e-2 costs a typical latent about as much as 0.01 of L1)."""

    def __init__(self, generator: Generator, samples: int = WHITENING_SAMPLES, seed: int = 0):
        with torch.no_grad():
            z = torch.randn(samples, generator.config.style_dim, generator=torch.Generator().manual_seed(seed))
            x = self.unwarp(generator.mapping(z.to(generator.input.input.device)))
            self.mean = x.mean(0)
            eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov((x - self.mean).T))
            self.whitening = eigenvectors / eigenvalues.clamp_min(1e-8).sqrt()

    @staticmethod
    def unwarp(w: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(w, 1 / MAPPING_SLOPE)

    def penalty(self, latents: torch.Tensor) -> torch.Tensor:
        return ((self.unwarp(latents) - self.mean) @ self.whitening).square().mean(dim=(-2, -1))


def invert_with_encoder(model: ZooModel, images: torch.Tensor, settings, *, on_step=None):
    """`invert` for the methods `encoder` (one forward pass) and `hybrid` (then `settings.steps` of optimisation in W+
    from there, loss + settings.prior_weight · WPrior penalty); the model's stored noise maps throughout."""
    from .devices import compute_dtype, dtype_name

    started = time.perf_counter()
    generator = model.generator.eval().requires_grad_(False)
    device = generator.input.input.device
    encoder = load_encoder(settings.encoder or default_encoder(model), base=model).to(device)
    start = encode(encoder, images.to(device))
    loss_fn = ReconstructionLoss(settings, images.to(device))
    dtype = torch.float32
    if settings.method == "hybrid":
        dtype = compute_dtype(settings.precision, device)
        prior = WPrior(generator)
        latents = nn.Parameter(start.clone())
        optimizer = torch.optim.Adam([latents], lr=settings.lr)
        for step in range(settings.steps):
            for group in optimizer.param_groups:
                group["lr"] = schedule(settings.lr, step / settings.steps, settings.lr_rampup, settings.lr_rampdown)
            loss = loss_fn(generator.synthesis(latents, dtype=dtype)) + settings.prior_weight * prior.penalty(latents)
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
            if on_step:
                on_step(step + 1, settings.steps)
        start = latents.detach()
    elif on_step:
        on_step(1, 1)
    with torch.no_grad():
        reconstructions = generator.synthesis(start)
        losses = loss_fn(reconstructions)
    return InversionResult(latents=start, noise=None, reconstructions=reconstructions, losses=losses, settings=settings,
                           loss_label=loss_fn.label, seconds=time.perf_counter() - started, precision=dtype_name(dtype))  # fmt: skip


def default_encoder(model: ZooModel) -> str:
    name = encoder_for(model)
    if name is None:
        raise ZooError(f"no encoder is installed for {model.info.domain}; train one with `zoo train-encoder {model.info.domain}` "
                       "or use --method bounded")  # fmt: skip
    return name


def train_and_install_encoder(base: str, name: str | None, config: EncoderTrainConfig, *, backbone: str = DEFAULT_BACKBONE,
                              resume: bool = False, force: bool = False, command: str = "", device="cpu",
                              on_step: ProgressCallback | None = None) -> tuple[CompanionRun, dict]:  # fmt: skip
    """`zoo train-encoder`: train an encoder for installed model `base` and install it as NAME (default BASE-encoder)."""
    registry = Registry()
    name = installable_name(ENCODERS, "encoder", base, name, force=force, registry=registry)
    run = train_encoder(load(base, device=device), name, config, backbone=backbone, resume=resume, on_step=on_step)
    lineage = {"transform": "encoder", "base": base, "backbone": backbone, **run.lineage(command)}
    entry = install_encoder(name, run.network.cpu(), base, lineage=lineage, force=force, registry=registry)
    return run, entry
