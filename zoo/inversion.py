"""Image -> latent: the paper's SeFa-bounded inversion (Sec. III-B, Eq. 9) and StyleGAN2's plain projection.

SeFa space of a model (`sefa_space`): A stacks the style-modulation weights (one row per input channel) of every
synthesis convolution (`conv1` and each `convs.i`; the ToRGB layers are left out, since they set colour, not content),
each row scaled to unit length as official SeFa does, so wide layers do not outvote narrow ones. The eigenvectors of
AᵀA, sorted by eigenvalue, are the semantic directions n_1, n_2, ... The bounds of direction k are the smallest and
largest coordinate (w − w̄)·n_k over `samples` of the model's own w = f(z): the region of W the model was trained on.

Bounded inversion (`invert`): w = w̄ + Σ_{k ≤ K} v_k n_k, and after every Adam step each v_k is clamped into its
bounds, so every latent it returns lies inside the box the model's own samples span along the top-K directions
(the paper's "explicit boundary"). In W+ mode every layer has its own v. Plain projection (`project`) is StyleGAN2's
projector: an unconstrained w (or W+) from the mean latent, a decaying random perturbation of it, and noise maps
optimised under the noise regulariser. Both minimise the same loss, per image: a pixel term plus a perceptual term.

Every image of a batch has its own latent and its own loss; the batch loss is their sum, so under Adam (which scales
each coordinate separately) a batched run computes what one run per image would, only faster.

Precision: by default the optimisation runs the synthesis in bfloat16 where the device computes it natively (x86 CPUs
with AVX512-BF16 or AMX, CUDA GPUs from Ampere on), otherwise in float32; latents, losses, Adam and the final
reconstruction are float32 either way. On the emoji family's held-out images this costs no reconstruction quality
and saves about a third of the time (docs/results.md, Table III).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from .checkpoint import ZooModel, read_safetensors
from .devices import compute_dtype, dtype_name
from .encoder import invert_with_encoder
from .errors import ZooError, check_in_range
from .files import atomic_path, sha256_file
from .home import zoo_home
from .images import MAX_BATCH
from .metrics import ssim
from .model import Generator
from .reconstruction import (  # noqa: F401 - re-exported: zoo.inversion was their home before zoo.reconstruction
    INVERSION_METHODS,
    PERCEPTUAL_CHOICES,
    PIXEL_LOSSES,
    TRANSLATION_METHODS,
    InversionResult,
    InversionSettings,
    ReconstructionLoss,
    StepCallback,
    learning_rate,
    resolve_perceptual,
)

LATENT_FORMAT = "zoo-latent"
LATENT_FORMAT_VERSION = "1"
SEFA_CACHE_VERSION = "1"


# ---------------------------------------------------------------------------------------------------------------------
# SeFa space


@dataclass
class SefaSpace:
    """Semantic directions (rows, sorted by eigenvalue), their eigenvalues, the centre w̄ and the per-direction bounds."""

    directions: torch.Tensor  # (D, D), row k = n_k
    eigenvalues: torch.Tensor  # (D,)
    center: torch.Tensor  # (D,)
    low: torch.Tensor  # (D,) smallest (w - w̄)·n_k over the model's samples
    high: torch.Tensor  # (D,) largest
    samples: int

    def to(self, device) -> "SefaSpace":
        tensors = {name: getattr(self, name).to(device) for name in ("directions", "eigenvalues", "center", "low", "high")}
        return SefaSpace(**tensors, samples=self.samples)


def modulation_matrix(generator: Generator) -> torch.Tensor:
    """A: the style-modulation weights of conv1 and every convs.i, one unit-length row per input channel."""
    layers = [generator.conv1, *generator.convs]
    rows = torch.cat([layer.conv.modulation.weight.detach().float() for layer in layers])
    return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def compute_sefa_space(generator: Generator, samples: int = 10_000, seed: int = 0) -> SefaSpace:
    a = modulation_matrix(generator).cpu()
    eigenvalues, eigenvectors = torch.linalg.eigh(a.T @ a)  # ascending; columns are eigenvectors
    order = eigenvalues.argsort(descending=True)
    directions = eigenvectors[:, order].T.contiguous()
    z = torch.randn(samples, generator.config.style_dim, generator=torch.Generator().manual_seed(seed))
    device = generator.input.input.device
    w = torch.cat([generator.mapping(chunk.to(device)).cpu() for chunk in z.split(1000)])
    center = generator.truncation_center().view(-1).cpu().float()
    coordinates = (w - center) @ directions.T
    return SefaSpace(directions, eigenvalues[order], center, coordinates.min(0).values, coordinates.max(0).values, samples)


def sefa_space(model: ZooModel, samples: int = 10_000, cache: bool = True) -> SefaSpace:
    """The model's SeFa space, cached in <zoo home>/cache/sefa/<checkpoint sha256>-<samples>.safetensors."""
    sha256 = sha256_file(model.info.path)
    path = zoo_home() / "cache" / "sefa" / f"{sha256}-{samples}.safetensors"
    if cache and path.is_file():
        try:
            tensors = load_file(str(path))
            return SefaSpace(**tensors, samples=samples)
        except (SafetensorError, OSError, TypeError):
            pass  # a damaged cache entry is recomputed and rewritten below
    space = compute_sefa_space(model.generator, samples)
    if cache:
        try:
            save_sefa_cache(path, space, sha256)
        except (OSError, SafetensorError) as error:  # a read-only or full zoo home costs the cache, not the inversion
            warnings.warn(f"{path}: SeFa space not cached ({str(error).splitlines()[0]}); it is computed again next time")
    return space.to(model.generator.input.input.device)


def save_sefa_cache(path: Path, space: SefaSpace, sha256: str) -> None:
    tensors = {name: value for name, value in asdict(space).items() if name != "samples"}
    metadata = {"zoo.sefa_version": SEFA_CACHE_VERSION, "model_sha256": sha256, "samples": str(space.samples),
                "layers": "conv1, convs.* (ToRGB excluded)", "rows": "unit-normalised"}  # fmt: skip
    with atomic_path(path) as tmp:
        save_file({name: value.contiguous() for name, value in tensors.items()}, str(tmp), metadata=metadata)


# ---------------------------------------------------------------------------------------------------------------------
# Settings and losses


def noise_regularization(noises: list[torch.Tensor]) -> torch.Tensor:
    """StyleGAN2's noise regulariser, per image: squared autocorrelation at shifts of 1 px, over a pyramid."""
    loss = 0
    for noise in noises:
        while True:
            loss = loss + (noise * torch.roll(noise, 1, dims=3)).mean(dim=(1, 2, 3)).square()
            loss = loss + (noise * torch.roll(noise, 1, dims=2)).mean(dim=(1, 2, 3)).square()
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, 2)
    return loss


@torch.no_grad()
def normalize_noise(noises: list[torch.Tensor]) -> None:
    for noise in noises:
        mean = noise.mean(dim=(1, 2, 3), keepdim=True)
        std = noise.std(dim=(1, 2, 3), keepdim=True)
        noise.sub_(mean).div_(std)


# ---------------------------------------------------------------------------------------------------------------------
# Latent parameterisations


class BoundedLatent(nn.Module):
    """w = w̄ + v · N_K, with v (B, rows, K) clamped into the SeFa bounds after every step; rows = n_latent in W+."""

    def __init__(self, space: SefaSpace, batch: int, rows: int, k: int):
        super().__init__()
        self.register_buffer("basis", space.directions[:k])
        self.register_buffer("center", space.center)
        self.register_buffer("low", space.low[:k])
        self.register_buffer("high", space.high[:k])
        self.v = nn.Parameter(torch.zeros(batch, rows, k, device=space.center.device))

    def latents(self, progress: float) -> torch.Tensor:
        return self.center + self.v @ self.basis

    @torch.no_grad()
    def constrain(self) -> None:
        self.v.copy_(torch.maximum(torch.minimum(self.v, self.high), self.low))


class FreeLatent(nn.Module):
    """StyleGAN2's projector latent: w from the mean latent, perturbed by noise that decays to 0 early on."""

    def __init__(self, generator: Generator, batch: int, rows: int, settings: InversionSettings, seed: int):
        super().__init__()
        with torch.no_grad():
            z = torch.randn(10_000, generator.config.style_dim, generator=torch.Generator().manual_seed(seed))
            w = generator.mapping(z.to(generator.input.input.device))
            self.spread = float((w - w.mean(0)).square().sum(1).mean().sqrt())
        center = generator.truncation_center().view(1, 1, -1)
        self.w = nn.Parameter(center.repeat(batch, rows, 1).clone())
        self.settings = settings
        self.random = torch.Generator(device=self.w.device).manual_seed(seed)

    def latents(self, progress: float) -> torch.Tensor:
        decay = max(0.0, 1.0 - progress / self.settings.perturbation_ramp) ** 2
        strength = self.spread * self.settings.perturbation * decay
        if strength == 0:
            return self.w
        return self.w + strength * torch.randn(self.w.shape, generator=self.random, device=self.w.device)

    def constrain(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------------------------
# The optimisation


def invert(
    model: ZooModel,
    images: torch.Tensor,
    settings: InversionSettings | None = None,
    *,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> InversionResult:
    """Invert (B, 3, H, W) images in [-1, 1] into `model`'s W (or W+), one latent per image."""
    settings = settings or InversionSettings()
    if settings.method == "auto":
        settings = replace(settings, method="bounded")
    if settings.method == "distilled":
        raise ZooError("--method distilled translates without inverting; use it with `zoo translate` or `zoo eval`")
    if settings.method in ("encoder", "hybrid"):
        return invert_with_encoder(model, _check_images(images, model.generator), settings, on_step=on_step)
    started = time.perf_counter()
    generator = model.generator.eval().requires_grad_(False)
    device = generator.input.input.device
    images = _check_images(images, generator).to(device)
    batch, n_latent = images.shape[0], generator.n_latent
    rows = n_latent if settings.w_plus else 1
    if settings.method == "bounded":
        space = sefa_space(model, settings.sefa_samples).to(device)
        k = settings.directions or generator.config.style_dim
        if k > generator.config.style_dim:
            raise ZooError(f"--directions {k}: the model's W has only {generator.config.style_dim} dimensions")
        latent = BoundedLatent(space, batch, rows, k)
    else:
        latent = FreeLatent(generator, batch, rows, settings, seed)
    noises = [buffer.expand(batch, -1, -1, -1).clone() for buffer in generator.noises.buffers()]
    if settings.optimize_noise:
        random = torch.Generator().manual_seed(seed)
        noises = [torch.randn(noise.shape, generator=random).to(device).requires_grad_(True) for noise in noises]
    loss_fn = ReconstructionLoss(settings, images)
    dtype = compute_dtype(settings.precision, device)
    parameters = list(latent.parameters()) + (noises if settings.optimize_noise else [])
    optimizer = torch.optim.Adam(parameters, lr=settings.lr, betas=(0.9, 0.999))

    for step in range(settings.steps):
        progress = step / settings.steps
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(settings.lr, progress, settings.lr_rampup, settings.lr_rampdown)
        reconstruction = generator.synthesis(_as_w_plus(latent.latents(progress), n_latent), noise=noises, dtype=dtype)
        loss = loss_fn(reconstruction)
        if settings.optimize_noise:
            loss = loss + settings.noise_regularize * noise_regularization(noises)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
        latent.constrain()
        if settings.optimize_noise:
            normalize_noise(noises)
        if on_step:
            on_step(step + 1, settings.steps)

    with torch.no_grad():
        latents = _as_w_plus(latent.latents(1.0), n_latent).detach()
        noises = [noise.detach() for noise in noises]
        reconstructions = generator.synthesis(latents, noise=noises)
        losses = loss_fn(reconstructions)
    bounded = isinstance(latent, BoundedLatent)
    return InversionResult(
        latents=latents,
        noise=noises if settings.optimize_noise else None,
        reconstructions=reconstructions,
        losses=losses,
        settings=settings,
        loss_label=loss_fn.label,
        v=latent.v.detach() if bounded else None,
        bounds=(latent.low, latent.high) if bounded else None,
        seconds=time.perf_counter() - started,
        precision=dtype_name(dtype),
    )


def project(model: ZooModel, images: torch.Tensor, settings: InversionSettings | None = None, **options) -> InversionResult:
    """StyleGAN2's plain projection (the baseline of the paper's Table III), with the same loss as `invert`."""
    settings = settings or InversionSettings(method="projection")
    if settings.method != "projection":
        raise ValueError("project() runs the projection method; use invert() for the bounded one")
    return invert(model, images, settings, **options)


def _as_w_plus(latents: torch.Tensor, n_latent: int) -> torch.Tensor:
    return latents if latents.shape[1] == n_latent else latents.expand(-1, n_latent, -1)


def _check_images(images: torch.Tensor, generator: Generator) -> torch.Tensor:
    size = generator.config.size
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (size, size):
        raise ZooError(f"images must be (B, 3, {size}, {size}) for this {size}px model, got {tuple(images.shape)}")
    return images


# ---------------------------------------------------------------------------------------------------------------------
# Latent files


def save_latent(path: str | Path, result: InversionResult, index: int, *, model: ZooModel, source: str, force: bool = False) -> Path:
    """Image `index` of `result` as a safetensors file: its W+ latent (and v, noise maps), the model's sha256 and settings."""
    path = Path(path)
    if path.exists() and not force:
        raise ZooError(f"{path}: already exists; pass --force to overwrite it or choose another --out")
    tensors = {"latent": result.latents[index]}
    if result.v is not None:
        tensors["v"] = result.v[index]
    for layer, noise in enumerate(result.noise or []):
        tensors[f"noise.{layer}"] = noise[index]
    metadata = {
        "zoo.format": LATENT_FORMAT,
        "zoo.format_version": LATENT_FORMAT_VERSION,
        "model_sha256": sha256_file(model.info.path),
        "domain": model.info.domain,
        "source": source,
        "settings": json.dumps(asdict(result.settings)),
        "loss": f"{result.losses[index].item():.6g}",
        "loss_label": result.loss_label,
        "precision": result.precision,
    }
    with atomic_path(path) as tmp:
        save_file({name: value.detach().cpu().contiguous() for name, value in tensors.items()}, str(tmp), metadata=metadata)
    return path


@dataclass
class SavedLatent:
    latent: torch.Tensor  # (n_latent, D)
    noise: list[torch.Tensor] | None  # per layer (1, r, r), or None for the model's const noise
    metadata: dict[str, str]


def load_latent(path: str | Path, model: ZooModel) -> SavedLatent:
    """A latent file written by `save_latent`; it must have been made with `model` (same checkpoint sha256)."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no such latent file (a folder, or missing); give a file made by `zoo invert`")
    metadata, tensors = read_safetensors(path, "latent file", "make it with `zoo invert`")
    if metadata.get("zoo.format") != LATENT_FORMAT or "latent" not in tensors:
        raise ZooError(f"{path}: not a zoo latent file; make one with `zoo invert DOMAIN IMAGE`")
    expected = sha256_file(model.info.path)
    if metadata.get("model_sha256") != expected:
        raise ZooError(
            f"{path}: inverted with another model ({metadata.get('domain')}, sha256 {metadata.get('model_sha256', '?')[:12]}…), "
            f"not {model.info.domain}; pass --from {metadata.get('domain')} or invert the image again"
        )
    generator = model.generator
    latent = check_latent_tensor(path, "latent", tensors["latent"], (generator.n_latent, generator.config.style_dim))
    noise_shapes = {f"noise.{layer}": tuple(buffer.shape[1:]) for layer, buffer in enumerate(generator.noises.buffers())}
    saved_noise = {name for name in tensors if name.startswith("noise.")}
    if saved_noise and saved_noise != set(noise_shapes):
        raise ZooError(f"{path}: noise maps {', '.join(sorted(saved_noise))} do not fit {model.info.domain} "
                       f"(it has {len(noise_shapes)}); invert the image again with `zoo invert`")  # fmt: skip
    noise = [check_latent_tensor(path, name, tensors[name], shape) for name, shape in noise_shapes.items()] if saved_noise else None
    return SavedLatent(latent, noise, metadata)


def check_latent_tensor(path: Path, name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A latent file's tensor as float32, if it has the model's shape and only finite numbers; else a ZooError."""
    if tuple(tensor.shape) != shape or not tensor.is_floating_point() or not torch.isfinite(tensor).all():
        raise ZooError(f"{path}: {name} is {tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}, not {shape} "
                       "finite floats as the model needs; invert the image again with `zoo invert`")  # fmt: skip
    return tensor.float()


def invert_in_batches(
    model: ZooModel,
    images: torch.Tensor,
    settings: InversionSettings | None = None,
    *,
    batch_size: int = 16,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> InversionResult:
    """`invert` over chunks of `batch_size` images, results joined in input order; on_step counts every chunk's steps."""
    settings = settings or InversionSettings()
    check_in_range("--batch", batch_size, 1, MAX_BATCH)
    chunks = images.split(batch_size)
    total = settings.steps * len(chunks)
    results = []
    for index, chunk in enumerate(chunks):
        done_before = index * settings.steps
        step_callback = (lambda done, _, before=done_before: on_step(before + done, total)) if on_step else None
        results.append(invert(model, chunk, settings, seed=seed + index, on_step=step_callback))
    if len(results) == 1:
        return results[0]
    first = results[0]
    return InversionResult(
        latents=torch.cat([result.latents for result in results]),
        noise=None if first.noise is None else [torch.cat(layers) for layers in zip(*(result.noise for result in results))],
        reconstructions=torch.cat([result.reconstructions for result in results]),
        losses=torch.cat([result.losses for result in results]),
        settings=settings,
        loss_label=first.loss_label,
        v=None if first.v is None else torch.cat([result.v for result in results]),
        bounds=first.bounds,
        seconds=sum(result.seconds for result in results),
        precision=first.precision,
    )


def reconstruction_scores(reconstructions: torch.Tensor, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image SSIM and mean absolute error on the 0-255 scale, of reconstructions against their inputs."""
    with torch.no_grad():
        return {"ssim": ssim(reconstructions, images), "l1": (reconstructions - images).abs().flatten(1).mean(1) * 127.5}
