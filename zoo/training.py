"""StyleGAN2 training: a base model from scratch, or the paper's fine-tuning of a base model into a new domain.

The recipe is rosinality's train.py, which the paper's authors used: the non-saturating logistic loss, lazy R1
regularisation of D every 16 steps, path-length regularisation of G every 4 steps, style mixing with probability 0.9,
Adam (lr 0.002, betas (0, 0.99)) with the lazy-regularisation correction, and an EMA copy of G, the model that is kept.
Additions: differentiable augmentation for small datasets (`zoo.augment`), an EMA half-life measured in images (so it
scales with the batch) with ADA's ramp-up, and mixed precision on CUDA.

Fine-tuning (paper, Sec. III-B): G and G_ema start from the base's G_ema, D from the base's D.
- FreezeFC keeps the mapping network (`style.*`) exactly the base's, so the new domain shares the base's W space and
  joins its family. The authors' code froze g_ema.style, which is never optimised, and so trained the mapping anyway
  (docs: paper-vs-official-code). Here the base's G_ema mapping is copied into G and G_ema, G's mapping gets no
  gradient, is not in the optimiser and is skipped by the EMA update, so it stays bit-identical to the base's.
- FreezeD K freezes the K discriminator blocks nearest the input: block 1 is FromRGB (`convs.0`) with the top residual
  block (`convs.1`, at full resolution), block k >= 2 is `convs.k` (at size / 2^(k-1)).

Every random draw of a step comes from a generator seeded with (seed, step) and is made for the whole global batch:
a resumed run draws what an uninterrupted one would, and a K-process run (DistributedDataParallel; each rank keeps
every K-th row) computes what one process with the same global batch would.

A run lives in a directory: `snapshot.pt` (everything needed to resume, written atomically), `metrics.jsonl` and
`samples/NNNNNN.png`. The first Ctrl-C (or SIGTERM) finishes the current step, writes a snapshot and raises
KeyboardInterrupt; a second Ctrl-C stops at once, leaving the previous snapshot.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import signal
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from . import augment
from .checkpoint import ZooModel, load_model, read_info
from .data import EpochSampler, PreparedDataset, images_to_float, prepare_dataset, seeded_generator
from .devices import check_precision, compute_dtype, dtype_name, pick_device
from .errors import ZooError
from .files import atomic_path, atomic_write_bytes, sha256_file
from .home import recorded_path
from .images import grid, save_image
from .logging_sinks import TrainingSink
from .model import Discriminator, Generator, ModelConfig
from .registry import Registry, RegistryEntry, check_declared_domain, install_model, resolve
from .sampling import sample

AUGMENT_MODES = ("auto", "ada", "diffaug", "off")
SNAPSHOT_FILE = "snapshot.pt"
METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
SNAPSHOT_FORMAT = 1
SAMPLE_GRID_IMAGES = 16
PATH_LENGTH_DECAY = 0.01
# Settings a resumed run may change: the length, what is written when, and mixed precision (a speed setting).
RESUMABLE_CHANGES = ("iters", "snapshot_every", "sample_every", "log_every", "amp", "precision")
# Under DDP, ranks agree on a Ctrl-C this often (a collective), so they all stop after the same step.
STOP_SYNC_EVERY = 10

ProgressCallback = Callable[[int, int, "dict | None"], None]  # (steps done, total, metrics on log steps else None)


# ---------------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass
class TrainConfig:
    """The hyper-parameters of one run. Its dict (`to_dict`) is the recipe recorded in the model's lineage.

    Fine-tuning (add-domain) normally sets freeze_fc=True; training a base from scratch cannot.
    """

    iters: int = 10_000
    batch: int = 16  # global: split evenly across distributed processes
    lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 10.0  # 0 disables R1
    d_reg_every: int = 16
    g_reg_every: int = 4
    # rosinality's default, which the paper's authors kept for fine-tuning; 0 disables it and saves about a fifth of
    # G's compute (the penalty matters most for the smoothness of W, i.e. for inversion and interpolation).
    path_regularize: float = 2.0
    path_batch_shrink: int = 2
    mixing: float = 0.9
    ema_kimg: float = 10.0  # EMA half-life in thousands of images: rosinality's 0.5 ** (32 / 10_000) at batch 32
    ema_rampup: float = 0.05  # half-life at most this fraction of the images seen so far (ADA); 0 disables
    mirror: bool = True  # flip real images horizontally at random (rosinality's RandomHorizontalFlip)
    augment: str = "auto"  # 'auto' = 'ada' below augment_auto_below images, else 'off'
    augment_auto_below: int = 5000
    ada_target: float = 0.6
    ada_interval: int = 4
    # Images (in thousands) for p to move from 0 to 1. ADA's 500 suits its runs of 5-25 Mimg; runs on a CPU see a few
    # hundred kimg, in which p could not reach the 0.3-0.8 that a small dataset needs before D has overfitted.
    ada_kimg: float = 100.0
    freeze_fc: bool = False
    freeze_d: int = 0
    snapshot_every: int = 1000
    sample_every: int = 1000
    log_every: int = 10
    seed: int = 0
    amp: bool = True  # mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling)
    # Without CUDA AMP: the dtype of G's synthesis and D's blocks in the adversarial steps ('auto': bfloat16 where the
    # hardware computes it natively). Weights, styles, demodulation, losses, R1, path length, Adam and EMA stay float32.
    precision: str = "auto"

    def __post_init__(self):
        self.betas = tuple(float(beta) for beta in self.betas)
        if self.augment not in AUGMENT_MODES:
            raise ZooError(f"--augment {self.augment!r}: use one of {', '.join(AUGMENT_MODES)}")
        positive = ("iters", "batch", "d_reg_every", "g_reg_every", "path_batch_shrink", "ada_interval",
                    "snapshot_every", "sample_every", "log_every")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ZooError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.freeze_d < 0:
            raise ZooError(f"--freeze-d must be 0 or more, got {self.freeze_d}")
        check_precision(self.precision)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    def augment_mode(self, n_images: int) -> str:
        if self.augment == "auto":
            return "ada" if n_images < self.augment_auto_below else "off"
        return self.augment


# ---------------------------------------------------------------------------------------------------------------------
# Losses and regularisers


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's logistic loss: softplus(D(fake)) + softplus(-D(real)), batch means."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's non-saturating loss: softplus(-D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1: the squared norm of D's gradient at the real images, batch mean (differentiable: create_graph)."""
    (gradient,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return gradient.square().flatten(1).sum(1).mean()


def path_lengths(images: torch.Tensor, latents: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """|J_w^T y| per image, y a random image: how far the image moves per unit step in W (per-layer mean)."""
    (gradient,) = torch.autograd.grad((images * projection).sum(), latents, create_graph=True)
    return gradient.square().sum(2).mean(1).sqrt()


def path_length_penalty(lengths: torch.Tensor, mean_length: torch.Tensor) -> torch.Tensor:
    """Path-length regularisation: the lengths' squared deviation from their running mean."""
    return (lengths - mean_length).square().mean()


# ---------------------------------------------------------------------------------------------------------------------
# EMA, optimisers, freezing


def ema_decay(config: TrainConfig, images_seen: int) -> float:
    """Per-step EMA decay for a half-life of ema_kimg thousand images (ramped up early in training)."""
    half_life = config.ema_kimg * 1000
    if config.ema_rampup > 0:
        half_life = min(half_life, images_seen * config.ema_rampup)
    return 0.5 ** (config.batch / max(half_life, 1e-8))


@torch.no_grad()
def accumulate_ema(ema_params: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * param, for the given (trainable) parameters only; buffers are left alone."""
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)


def make_optimizers(generator: nn.Module, discriminator: nn.Module, config: TrainConfig):
    """Adam for G and D over their trainable parameters, corrected for lazy regularisation.

    A regulariser applied every k steps makes k+1 optimiser steps where k were planned, so lr and betas are
    rescaled by c = k / (k + 1) (lr * c, beta ** c) to keep the same effective schedule (StyleGAN2, App. C).
    """

    def adam(module: nn.Module, reg_every: int | None) -> torch.optim.Adam:
        c = reg_every / (reg_every + 1) if reg_every else 1.0
        trainable = [param for param in module.parameters() if param.requires_grad]
        return torch.optim.Adam(trainable, lr=config.lr * c, betas=(config.betas[0] ** c, config.betas[1] ** c))

    g_reg_every = config.g_reg_every if config.path_regularize > 0 else None
    d_reg_every = config.d_reg_every if config.r1_gamma > 0 else None
    return adam(generator, g_reg_every), adam(discriminator, d_reg_every)


def frozen_discriminator_prefixes(discriminator: Discriminator, blocks: int) -> tuple[str, ...]:
    """FreezeD: parameter-name prefixes of the first `blocks` blocks from the input (see the module docstring)."""
    available = len(discriminator.convs) - 1
    if blocks > available:
        raise ZooError(
            f"--freeze-d {blocks}: the {discriminator.config.size} px discriminator has {available} blocks; "
            f"use 0 to {available}"
        )
    return tuple(f"convs.{index}." for index in range(blocks + 1)) if blocks else ()


def freeze(module: nn.Module, prefixes: tuple[str, ...]) -> list[str]:
    """Turn off requires_grad for the parameters whose names start with a prefix; returns their names."""
    frozen = [name for name, param in module.named_parameters() if name.startswith(prefixes)]
    for name in frozen:
        module.get_parameter(name).requires_grad_(False)
    return frozen


def set_requires_grad(params: list[torch.Tensor], flag: bool) -> None:
    for param in params:
        param.requires_grad_(flag)


# ---------------------------------------------------------------------------------------------------------------------
# One step's randomness, and G as trained


class BatchRandom:
    """All random draws of one training step, from a generator seeded with (seed, step).

    Each draw is made for the whole global batch; rank r of W keeps rows r, r+W, r+2W, ... Strided rather than
    contiguous rows because D's minibatch-stddev groups images i, i+B/4, i+2B/4, i+3B/4 of its batch: with strided
    rows a rank's groups are exactly the groups one process would form, so a K-process run computes the same thing.
    """

    def __init__(self, seed: int, step: int, device: torch.device, rank: int = 0, world_size: int = 1):
        self.generator = seeded_generator(seed, "step", step, device=device)
        self.device, self.rank, self.world_size = device, rank, world_size

    def rows(self, n_global: int) -> slice:
        return slice(self.rank, n_global, self.world_size)

    def normal(self, n_global: int, *shape: int) -> torch.Tensor:
        draw = torch.randn((n_global, *shape), generator=self.generator, device=self.device)
        return draw[self.rows(n_global)]

    def uniform(self, n_global: int) -> torch.Tensor:
        return torch.rand(n_global, generator=self.generator, device=self.device)[self.rows(n_global)]

    def integers(self, low: int, high: int, n_global: int) -> torch.Tensor:
        draw = torch.randint(low, high, (n_global,), generator=self.generator, device=self.device)
        return draw[self.rows(n_global)]

    def augment_params(self, n_global: int, p: float) -> dict[str, torch.Tensor]:
        params = augment.draw_params(n_global, p, self.generator)
        return {name: value[self.rows(n_global)] for name, value in params.items()}


class MixingGenerator(nn.Module):
    """G as trained: two latents mixed per image at a random layer (style mixing), with explicit noise maps.

    This is the module DistributedDataParallel wraps, so the mapping and the synthesis run in one DDP forward.
    """

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, z, z_mix, cutoff, noise, latents_need_grad: bool = False, dtype: torch.dtype | None = None):
        """Image and W+ latents; layers before `cutoff` (per image) take w = mapping(z), the rest mapping(z_mix)."""
        w, w_mix = self.generator.style(torch.cat([z, z_mix])).chunk(2)
        layer = torch.arange(self.generator.n_latent, device=z.device)
        latents = torch.where((layer < cutoff[:, None])[:, :, None], w[:, None], w_mix[:, None])
        if latents_need_grad and not latents.requires_grad:
            latents.requires_grad_(True)  # FreezeFC: the path-length penalty still needs d image / d W+
        return self.generator.synthesis(latents, noise=noise, dtype=dtype), latents


# ---------------------------------------------------------------------------------------------------------------------
# The trainer: models, optimisers, one step


class Trainer:
    """G, G_ema, D, their optimisers and the regularisation state of one run; `train_step` is one iteration."""

    def __init__(
        self,
        config: TrainConfig,
        generator: Generator,
        discriminator: Discriminator,
        *,
        augment_mode: str,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
    ):
        if config.batch % world_size:
            raise ZooError(f"--batch {config.batch} does not split across {world_size} processes; use a multiple of it")
        self.config, self.device, self.rank, self.world_size = config, device, rank, world_size
        self.local_batch = config.batch // world_size
        self.g = generator.to(device).train()
        self.g_ema = copy.deepcopy(self.g).eval().requires_grad_(False)
        self.d = discriminator.to(device).train()

        freeze(self.g, ("style.",) if config.freeze_fc else ())
        freeze(self.d, frozen_discriminator_prefixes(self.d, config.freeze_d))
        self.g_opt, self.d_opt = make_optimizers(self.g, self.d, config)
        trainable_g = [name for name, param in self.g.named_parameters() if param.requires_grad]
        self.g_params = [self.g.get_parameter(name) for name in trainable_g]
        self.ema_params = [self.g_ema.get_parameter(name) for name in trainable_g]
        self.d_params = [param for param in self.d.parameters() if param.requires_grad]
        self.noise_sizes = [buffer.shape[-1] for buffer in self.g.noises.buffers()]

        self.g_mixing = MixingGenerator(self.g)
        self.g_train, self.d_train = self.g_mixing, self.d
        if world_size > 1:
            # Every parameter must get a gradient in every backward pass (the regularisers add a zero term for it).
            self.g_train = DistributedDataParallel(self.g_mixing, broadcast_buffers=False)
            self.d_train = DistributedDataParallel(self.d, broadcast_buffers=False)

        self.amp = config.amp and device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp and self.amp_dtype == torch.float16)
        self.compute_dtype = torch.float32 if self.amp else compute_dtype(config.precision, device)

        self.augment = augment.AugmentController(
            p=1.0 if augment_mode == "diffaug" else 0.0,
            adaptive=augment_mode == "ada",
            target=config.ada_target,
            interval=config.ada_interval,
            speed_images=config.ada_kimg * 1000,
            batch=config.batch,
        )
        self.mean_path_length = torch.zeros((), device=device)
        self.step = 0
        self.latest: dict[str, torch.Tensor] = {}

    # -- one iteration ------------------------------------------------------------------------------------------------

    def train_step(self, real_uint8: torch.Tensor) -> None:
        """One iteration on this rank's share of the global batch (uint8 images); advances `step`."""
        cfg, step = self.config, self.step
        rng = BatchRandom(cfg.seed, step, self.device, self.rank, self.world_size)
        real = self.real_images(real_uint8, rng)
        self.discriminator_step(real, rng)
        if cfg.r1_gamma > 0 and step % cfg.d_reg_every == 0:
            self.r1_step(real, rng)
        self.generator_step(rng)
        if cfg.path_regularize > 0 and step % cfg.g_reg_every == 0:
            self.path_length_step(rng)
        accumulate_ema(self.ema_params, self.g_params, ema_decay(cfg, step * cfg.batch))
        self.step += 1

    def discriminator_step(self, real: torch.Tensor, rng: BatchRandom) -> None:
        with torch.no_grad(), self.autocast():
            fake, _ = self.g_mixing(*self.generator_inputs(rng, self.config.batch), dtype=self.compute_dtype)
        with self.autocast():
            real_logits = self.d_train(self.augmented(real, rng), dtype=self.compute_dtype).float()
            fake_logits = self.d_train(self.augmented(fake, rng), dtype=self.compute_dtype).float()
            loss = d_loss(real_logits, fake_logits)
        self.d_opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.d_opt)
        self.augment.observe(real_logits)
        self.latest.update(
            d_loss=loss.detach(), real_score=real_logits.detach().mean(), fake_score=fake_logits.detach().mean()
        )

    def r1_step(self, real: torch.Tensor, rng: BatchRandom) -> None:
        """Lazy R1 in float32: every d_reg_every steps, weighted by that interval."""
        real = real.detach().requires_grad_(True)
        logits = self.d_train(self.augmented(real, rng))
        penalty = r1_penalty(logits, real)
        # D's output bias is not in the penalty's graph; the zero term gives it a gradient, which DDP requires.
        loss = self.config.r1_gamma / 2 * penalty * self.config.d_reg_every + 0 * logits[0, 0]
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.d_opt.step()
        self.latest["r1"] = penalty.detach()

    def generator_step(self, rng: BatchRandom) -> None:
        set_requires_grad(self.d_params, False)  # D only passes the gradient on to the images here
        with self.autocast():
            fake, _ = self.g_train(*self.generator_inputs(rng, self.config.batch), dtype=self.compute_dtype)
            loss = g_loss(self.d(self.augmented(fake, rng), dtype=self.compute_dtype).float())
        self.g_opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.g_opt)
        self.scaler.update()
        set_requires_grad(self.d_params, True)
        self.latest["g_loss"] = loss.detach()

    def path_length_step(self, rng: BatchRandom) -> None:
        """Lazy path-length regularisation in float32, on a batch shrunk by path_batch_shrink."""
        cfg = self.config
        n_global = max(1, self.local_batch // cfg.path_batch_shrink) * self.world_size
        fake, latents = self.g_train(*self.generator_inputs(rng, n_global), latents_need_grad=True)
        projection = rng.normal(n_global, *fake.shape[1:]) / math.sqrt(fake.shape[2] * fake.shape[3])
        lengths = path_lengths(fake, latents, projection)
        # The running mean follows the global batch mean, held constant in the penalty so ranks need not sync inside
        # the graph (rosinality also differentiates through this 1% update of the mean).
        self.mean_path_length.lerp_(self.all_ranks_mean(lengths.detach().mean()), PATH_LENGTH_DECAY)
        penalty = path_length_penalty(lengths, self.mean_path_length)
        # The last ToRGB bias is not in the penalty's graph; the zero term gives it a gradient, which DDP requires.
        loss = cfg.path_regularize * cfg.g_reg_every * penalty + 0 * fake[0, 0, 0, 0]
        self.g_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.g_opt.step()
        self.latest.update(path_penalty=penalty.detach(), path_length=self.mean_path_length.clone())

    # -- helpers ------------------------------------------------------------------------------------------------------

    def real_images(self, real_uint8: torch.Tensor, rng: BatchRandom) -> torch.Tensor:
        images = images_to_float(real_uint8.to(self.device, non_blocking=True))
        if self.config.mirror:
            flip = rng.uniform(self.config.batch) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
        return images

    def generator_inputs(self, rng: BatchRandom, n_global: int):
        """z, the mixing z, the per-image mixing cutoff (n_latent = no mixing) and noise maps, for this rank's rows."""
        n_latent = self.g.n_latent
        z = rng.normal(n_global, self.g.config.style_dim)
        z_mix = rng.normal(n_global, self.g.config.style_dim)
        mixed = rng.uniform(n_global) < self.config.mixing
        cutoff = torch.where(mixed, rng.integers(1, n_latent, n_global), n_latent)
        noise = [rng.normal(n_global, 1, size, size) for size in self.noise_sizes]
        return z, z_mix, cutoff, noise

    def augmented(self, images: torch.Tensor, rng: BatchRandom) -> torch.Tensor:
        if self.augment.p == 0:
            return images
        return augment.apply(images, rng.augment_params(self.config.batch, self.augment.p))

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp)

    def all_ranks_mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            value = value.clone()
            dist.all_reduce(value)  # gloo has no AVG
            value /= self.world_size
        return value

    def metrics(self) -> dict[str, float]:
        """The latest losses and statistics as numbers (this synchronises with the device: call it on log steps)."""
        values = {name: value.item() for name, value in self.latest.items()}
        values["augment_p"] = self.augment.p
        if self.augment.last_rt is not None:
            values["ada_rt"] = self.augment.last_rt
        return {name: float(f"{value:.6g}") for name, value in values.items()}

    # -- state --------------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "generator": self.g.state_dict(),
            "generator_ema": self.g_ema.state_dict(),
            "latent_avg": self.g_ema.latent_avg,
            "discriminator": self.d.state_dict(),
            "g_optimizer": self.g_opt.state_dict(),
            "d_optimizer": self.d_opt.state_dict(),
            "grad_scaler": self.scaler.state_dict(),
            "augment": self.augment.state_dict(),
            "mean_path_length": self.mean_path_length.item(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.g.load_state_dict(state["generator"])
        self.g_ema.load_state_dict(state["generator_ema"])
        self.g_ema.latent_avg = state["latent_avg"]
        self.d.load_state_dict(state["discriminator"])
        self.g_opt.load_state_dict(state["g_optimizer"])
        self.d_opt.load_state_dict(state["d_optimizer"])
        self.scaler.load_state_dict(state["grad_scaler"])
        self.augment.load_state_dict(state["augment"])
        self.mean_path_length.fill_(state["mean_path_length"])


# ---------------------------------------------------------------------------------------------------------------------
# Run directory: snapshot, metrics, samples


def save_snapshot(run_dir: Path, state: dict) -> Path:
    """Write snapshot.pt atomically: a crash or kill mid-write leaves the previous snapshot as it was."""
    path = Path(run_dir) / SNAPSHOT_FILE
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_snapshot(run_dir: Path, device: torch.device | str = "cpu") -> dict | None:
    """The run's snapshot (tensors on `device`), or None if it has none; plain data only (weights_only)."""
    path = Path(run_dir) / SNAPSHOT_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for a damaged zip/pickle
        problem = type(error).__name__
        raise ZooError(f"{path}: unreadable snapshot ({problem}); delete the run directory to start over") from None
    if state.get("format") != SNAPSHOT_FORMAT:
        raise ZooError(f"{path}: snapshot format {state.get('format')} is not {SNAPSHOT_FORMAT}; start a new run")
    return state


def rng_state() -> dict:
    """Global RNG states. The loop draws only from (seed, step) generators; these cover anything else that draws."""
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(internal), gauss],
    }


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([cuda_state.cpu() for cuda_state in state["cuda"]])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


class MetricsLog:
    """metrics.jsonl: one JSON object per logged step."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records past `step` (logged after the snapshot a run resumes from), so none is repeated."""
        if not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
        if len(kept) != len(lines):
            atomic_write_bytes(self.path, "".join(kept).encode("utf-8"))


def write_samples(run_dir: Path, step: int, generator: Generator, seed: int, provenance: dict | None = None) -> Path:
    """A grid of G_ema's images for a fixed set of latents (so grids of successive steps are comparable); the PNG
    records `provenance` with the step and seed."""
    images = sample(generator, SAMPLE_GRID_IMAGES, seed=seed)
    return save_image(grid(images), Path(run_dir) / SAMPLES_DIR / f"{step:06d}.png", force=True,
                      provenance={**(provenance or {}), "step": step, "seed": seed})  # fmt: skip


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a request honoured between steps; a second SIGINT interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def agreed(self, step: int, world_size: int, device: torch.device) -> bool:
        """Whether to stop after `step`: under DDP every STOP_SYNC_EVERY steps, when any rank was asked."""
        if world_size == 1:
            return self.requested
        if step % STOP_SYNC_EVERY:
            return False
        flag = torch.tensor(float(self.requested), device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


# ---------------------------------------------------------------------------------------------------------------------
# Distributed setup


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_process_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_process_group:
            dist.destroy_process_group()


def init_distributed() -> DistributedContext:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK): NCCL with CUDA, else gloo."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return DistributedContext(dist.get_rank(), world_size, local_rank, owns_process_group=True)


def training_device(requested: str | torch.device | None, context: DistributedContext) -> torch.device:
    if requested is not None:
        return pick_device(str(requested))
    if torch.cuda.is_available():
        return torch.device("cuda", context.local_rank)
    return pick_device("auto") if context.world_size == 1 else torch.device("cpu")  # gloo cannot reduce MPS tensors


# ---------------------------------------------------------------------------------------------------------------------
# Training runs


@dataclass
class BaseRecord:
    """What the lineage of a fine-tuned model records about its base."""

    name: str
    family: str
    sha256: str


@dataclass
class TrainResult:
    generator: Generator  # G_ema: the model to keep
    discriminator: Discriminator
    config: TrainConfig
    steps: int
    wall_time_seconds: float
    metrics: dict  # the last logged metrics
    data: dict  # root, images, skipped
    augment: dict  # mode, final p
    precision: str  # the dtype the adversarial steps ran in (the recipe may say 'auto')
    base: BaseRecord | None
    run_dir: Path
    is_main_process: bool = True


@dataclass
class _Run:
    """What a snapshot records besides the trainer's state, checked when resuming."""

    config: TrainConfig
    model_config: ModelConfig
    data: PreparedDataset
    augment_mode: str
    base: BaseRecord | None
    run_dir: Path
    wall_time_before: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def wall_time(self) -> float:
        return self.wall_time_before + time.perf_counter() - self.started

    def snapshot_state(self, trainer: Trainer) -> dict:
        return {
            "format": SNAPSHOT_FORMAT,
            "trainer": trainer.state_dict(),
            "rng": rng_state(),
            "train_config": self.config.to_dict(),
            "model_config": self.model_config.to_dict(),
            "data_fingerprint": self.data.fingerprint,
            "augment_mode": self.augment_mode,
            "base": asdict(self.base) if self.base else None,
            "wall_time_seconds": self.wall_time(),
        }

    def check_resumable(self, snapshot: dict) -> None:
        """A resumed run must compute what the interrupted one would have: same settings, model, data and base."""
        where = self.run_dir / SNAPSHOT_FILE
        step = snapshot["trainer"]["step"]
        saved = TrainConfig.from_dict(snapshot["train_config"])
        changed = [
            f"{item.name} {getattr(saved, item.name)!r} -> {getattr(self.config, item.name)!r}"
            for item in fields(TrainConfig)
            if item.name not in RESUMABLE_CHANGES and getattr(saved, item.name) != getattr(self.config, item.name)
        ]
        if changed:
            raise ZooError(f"{where}: settings differ from the snapshot's ({'; '.join(changed)}); resume with those")
        if snapshot["model_config"] != self.model_config.to_dict():
            raise ZooError(f"{where}: the snapshot has another architecture ({snapshot['model_config']}); use that one")
        if snapshot["data_fingerprint"] != self.data.fingerprint:
            raise ZooError(f"{where}: the images in {self.data.root} changed since the snapshot; restore them")
        if snapshot["base"] != (asdict(self.base) if self.base else None):
            raise ZooError(f"{where}: the snapshot was fine-tuned from another base ({snapshot['base']}); use that one")
        if step > self.config.iters:
            raise ZooError(f"{where}: the snapshot is at step {step}, past --iters {self.config.iters}; raise --iters")


def load_base(name_or_path: str | Path, device: str | torch.device = "cpu") -> ZooModel:
    """A base model for fine-tuning: its G_ema, and its D when the checkpoint holds one."""
    path, sha256 = resolve(name_or_path)
    with_discriminator = read_info(path).has_discriminator
    return load_model(path, expected_sha256=sha256, with_discriminator=with_discriminator, device=device)


def default_run_dir(name: str) -> Path:
    return Registry().run_dir(name)


def train(
    config: TrainConfig,
    data_root: str | Path,
    run_dir: str | Path,
    *,
    model_config: ModelConfig | None = None,
    base: ZooModel | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    cache_dir: str | Path | None = None,
    include: Callable[[Path], bool] | None = None,
    progress: ProgressCallback | None = None,
    sinks: Sequence[TrainingSink] = (),
    provenance: dict | None = None,
) -> TrainResult:
    """Train from scratch (`model_config`) or fine-tune (`base`, e.g. from `load_base`) on the images in data_root
    (those `include(path)` accepts, when given).

    Under torchrun every process calls this; the batch is global, and only rank 0 writes files. With resume=True
    the run continues from run_dir's snapshot (if any); without it an existing snapshot is a ZooError, so no run is
    overwritten by accident. The images are cached in cache_dir (default: run_dir/data). Besides metrics.jsonl and
    the sample grids, rank 0 hands each logged step's metrics and each grid to `sinks` (zoo/logging_sinks.py); the
    grids' PNGs record `provenance` (e.g. the model's name and data licence) with the run's base, step and seed.
    """
    if (model_config is None) == (base is None):
        raise ValueError("give model_config (train from scratch) or base (fine-tune), not both or neither")
    if config.freeze_fc and base is None:
        raise ZooError("FreezeFC keeps a base model's mapping network: it needs a base (fine-tuning), not a new model")
    run_dir = Path(run_dir)
    if not resume and (run_dir / SNAPSHOT_FILE).is_file():
        raise ZooError(f"{run_dir / SNAPSHOT_FILE}: a run is already there; pass --resume, or delete {run_dir}")
    context = init_distributed()
    try:
        device = training_device(device, context)
        run = _start_run(config, data_root, run_dir, model_config, base, cache_dir, include, context)
        trainer = Trainer(config, *_initial_models(run, base), augment_mode=run.augment_mode, device=device,
                          rank=context.rank, world_size=context.world_size)  # fmt: skip
        snapshot = load_snapshot(run_dir, device) if resume else None
        if snapshot is not None:
            run.check_resumable(snapshot)
            trainer.load_state_dict(snapshot["trainer"])
            restore_rng_state(snapshot["rng"])
            run.wall_time_before = snapshot["wall_time_seconds"]
        elif resume:
            warnings.warn(f"{run_dir}: no snapshot to resume from; starting a new run", stacklevel=2)
        grid_provenance = {"command": "train", "run": run_dir.name, **(provenance or {}),
                           "base": asdict(run.base) if run.base else None}  # fmt: skip
        metrics = _train_loop(trainer, run, context, progress, sinks, grid_provenance)
        return _result(trainer, run, metrics, context)
    finally:
        context.close()


def _start_run(config, data_root, run_dir, model_config, base, cache_dir, include, context) -> _Run:
    if base is not None:
        base_sha256 = sha256_file(base.info.path)
        base_info = BaseRecord(name=base.info.domain, family=base.info.family, sha256=base_sha256)
        model_config = base.info.config
    else:
        base_info = None
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob(f".{SNAPSHOT_FILE}.*.tmp"):  # left by a kill during a snapshot write
            stale.unlink(missing_ok=True)
    # Rank 0 decodes the images and writes the cache; the others then read it.
    cache_dir = Path(cache_dir) if cache_dir else run_dir / "data"
    data = prepare_dataset(data_root, model_config.size, cache_dir, include=include) if context.is_main else None
    context.barrier()
    data = data or prepare_dataset(data_root, model_config.size, cache_dir, include=include)
    if data.skipped and context.is_main:
        warnings.warn(f"{data.root}: {data.skip_report()}", stacklevel=3)
    return _Run(config, model_config, data, config.augment_mode(len(data)), base_info, run_dir)


def _initial_models(run: _Run, base: ZooModel | None) -> tuple[Generator, Discriminator]:
    torch.manual_seed(run.config.seed)
    random.seed(run.config.seed)
    if base is None:
        return Generator(run.model_config), Discriminator(run.model_config)
    generator = copy.deepcopy(base.generator)
    if not run.config.freeze_fc:
        generator.latent_avg = None  # the mapping will change, so the base's truncation centre no longer applies
    if base.discriminator is not None:
        return generator, copy.deepcopy(base.discriminator)
    warnings.warn(
        f"{base.info.path}: the base checkpoint has no discriminator; D starts from random weights, "
        "so fine-tuning needs more iterations", stacklevel=3
    )  # fmt: skip
    return generator, Discriminator(run.model_config)


def _train_loop(trainer: Trainer, run: _Run, context: DistributedContext, progress: ProgressCallback | None,
                sinks: Sequence[TrainingSink], grid_provenance: dict) -> dict:  # fmt: skip
    cfg, run_dir = run.config, run.run_dir
    sampler = EpochSampler(len(run.data), cfg.batch, cfg.seed, context.rank, context.world_size)
    log = MetricsLog(run_dir / METRICS_FILE)
    if context.is_main:
        log.truncate_after(trainer.step)
    metrics: dict = {}
    last_log_step, last_log_time = trainer.step, time.perf_counter()
    if progress:
        progress(trainer.step, cfg.iters, None)
    with StopRequest() as stop:
        while trainer.step < cfg.iters:
            trainer.train_step(run.data.images[sampler.indices(trainer.step)])
            done = trainer.step
            logged = None
            if done % cfg.log_every == 0 or done == cfg.iters:
                now = time.perf_counter()
                seconds_per_step = (now - last_log_time) / (done - last_log_step)
                metrics = {"step": done, **trainer.metrics(), "sec_per_it": float(f"{seconds_per_step:.4g}")}
                last_log_step, last_log_time, logged = done, now, metrics
                if context.is_main:
                    log.append(metrics)
                    for sink in sinks:
                        sink.metrics(done, metrics)
            if stop.agreed(done, context.world_size, trainer.device):
                if context.is_main:
                    save_snapshot(run_dir, run.snapshot_state(trainer))
                raise KeyboardInterrupt
            if context.is_main and (done % cfg.snapshot_every == 0 or done == cfg.iters):
                save_snapshot(run_dir, run.snapshot_state(trainer))
            if context.is_main and (done % cfg.sample_every == 0 or done == cfg.iters):
                samples = write_samples(run_dir, done, trainer.g_ema, cfg.seed, grid_provenance)
                for sink in sinks:
                    sink.samples(done, samples)
            if progress:
                progress(done, cfg.iters, logged)
    return metrics


def _result(trainer: Trainer, run: _Run, metrics: dict, context: DistributedContext) -> TrainResult:
    return TrainResult(
        generator=trainer.g_ema,
        discriminator=trainer.d.eval(),
        config=run.config,
        steps=trainer.step,
        wall_time_seconds=run.wall_time(),
        metrics=metrics,
        data={"root": recorded_path(run.data.root), "images": len(run.data), "skipped": len(run.data.skipped)},
        augment={"mode": run.augment_mode, "p": trainer.augment.p},
        precision=dtype_name(trainer.compute_dtype),
        base=run.base,
        run_dir=run.run_dir,
        is_main_process=context.is_main,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Installing the result


def check_installable(
    name: str,
    *,
    force: bool = False,
    family: str | None = None,
    keeps_mapping_of: str | None = None,
    resolution: int | None = None,
    registry: Registry | None = None,
) -> None:
    """Refuse before training what installing would refuse after it.

    That is an existing model without force, a family whose mapping network the result will not have, or a name a
    plugin declares for another family or resolution. keeps_mapping_of is the family whose mapping the result keeps
    (the base's under FreezeFC), else None.
    """
    registry = registry or Registry()
    domains = registry.domains()
    registry.check_free(name, force, domains)
    family = family or keeps_mapping_of or name
    if resolution is not None:
        check_declared_domain(name, family, resolution, force)
    members = [other for other, entry in domains.items() if entry.family == family and other != name]
    if members and family != keeps_mapping_of:
        raise ZooError(
            f"family '{family}' ({', '.join(sorted(members))}) shares a mapping network this model will not have "
            "(only FreezeFC fine-tuning keeps the base's); choose another --family"
        )


def install_result(
    name: str,
    result: TrainResult,
    *,
    family: str | None = None,
    force: bool = False,
    command: str | None = None,
    registry: Registry | None = None,
    keep_discriminator: bool = True,
    data_license: str | None = None,
) -> RegistryEntry:
    """Install G_ema (and D, for later fine-tuning, unless keep_discriminator is off) as checkpoints/NAME.safetensors
    with its lineage.

    The family defaults to the base's under FreezeFC (same mapping network), else to the model's own name.
    """
    base = result.base
    if family is None:
        family = base.family if base and result.config.freeze_fc else name
    lineage = {
        "transform": "fine-tune" if base else "train-base",
        "base": base.name if base else None,
        "base_sha256": base.sha256 if base else None,
        "recipe": result.config.to_dict(),
        "iterations": result.steps,
        "data": result.data,
        "augment": result.augment,
        "precision": result.precision,
        "wall_time_seconds": round(result.wall_time_seconds, 1),
        "command": command,
        "data_license": data_license,  # what the training images' licence asks of the model and its images
    }
    lineage = {key: value for key, value in lineage.items() if value is not None}
    return install_model(
        name, result.generator, family=family, lineage=lineage, force=force, registry=registry,
        discriminator=result.discriminator if keep_discriminator else None,
    )  # fmt: skip


def train_and_install(
    name: str,
    config: TrainConfig,
    data_root: str | Path,
    *,
    base: ZooModel | None = None,
    model_config: ModelConfig | None = None,
    family: str | None = None,
    force: bool = False,
    resume: bool = False,
    run_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    include: Callable[[Path], bool] | None = None,
    progress: ProgressCallback | None = None,
    command: str | None = None,
    registry: Registry | None = None,
    keep_discriminator: bool = True,
    data_license: str | None = None,
    sinks: Sequence[TrainingSink] = (),
) -> tuple[TrainResult, RegistryEntry | None]:
    """`zoo train-base` / `zoo add-domain` in one call: refuse early, train, install (rank 0); (result, entry)."""
    keeps_mapping_of = base.info.family if base is not None and config.freeze_fc else None
    resolution = model_config.size if model_config is not None else base.info.config.size if base is not None else None
    check_installable(name, force=force, family=family, keeps_mapping_of=keeps_mapping_of, resolution=resolution,
                      registry=registry)  # fmt: skip
    result = train(
        config, data_root, run_dir or default_run_dir(name), model_config=model_config, base=base, resume=resume, include=include,
        device=device, progress=progress, sinks=sinks, provenance={"model": name, "data_license": data_license},
    )  # fmt: skip
    if not result.is_main_process:
        return result, None
    entry = install_result(name, result, family=family, force=force, command=command, registry=registry,
                           keep_discriminator=keep_discriminator, data_license=data_license)  # fmt: skip
    return result, entry


# ---------------------------------------------------------------------------------------------------------------------
# Progress display


@contextlib.contextmanager
def rich_progress(description: str = "training", console=None) -> Iterator[ProgressCallback]:
    """A rich progress bar (steps, it/s, ETA, latest losses and augmentation p) as a ProgressCallback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class StepsPerSecond(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed or 0:.2f} it/s")

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), StepsPerSecond(),
               TimeRemainingColumn(), TextColumn("{task.fields[status]}")]  # fmt: skip
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(description, total=None, status="")
        started = False

        def update(done: int, total: int, metrics: dict | None) -> None:
            nonlocal started
            if not started:  # a resumed run starts part-way: that jump is not speed
                bar.reset(task, total=total, completed=done)
                started = True
            status = {"status": format_metrics(metrics)} if metrics else {}
            bar.update(task, completed=done, total=total, **status)

        yield update


def format_metrics(metrics: dict) -> str:
    labels = {"d_loss": "D", "g_loss": "G", "r1": "R1", "path_length": "PL", "augment_p": "p",
              "latent": "latent", "image": "image", "offset": "offset"}  # the last three: encoder training
    return "  ".join(f"{label} {metrics[key]:.3g}" for key, label in labels.items() if key in metrics)
