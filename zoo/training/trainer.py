"""The trainer: G, G_ema, D, their optimisers, FreezeFC/FreezeD, and one iteration (`Trainer.train_step`).

Every random draw of a step comes from a generator seeded with (seed, step) and is made for the whole global batch
(`BatchRandom`): a resumed run draws what an uninterrupted one would, and a K-process run (DistributedDataParallel;
each rank keeps every K-th row) computes what one process with the same global batch would.

FreezeFC keeps the mapping network (`style.*`) exactly the base's: G's mapping gets no gradient, is not in the
optimiser and is skipped by the EMA update. FreezeD K freezes the K discriminator blocks nearest the input: block 1 is
FromRGB (`convs.0`) with the top residual block (`convs.1`, at full resolution), block k >= 2 is `convs.k`.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import augment
from ..data import images_to_float, seeded_generator
from ..devices import compute_dtype
from ..errors import ZooError
from ..model import Discriminator, Generator
from .config import TrainConfig
from .distributed import rank_zero_choice
from .ema import accumulate_ema, ema_decay
from .loss import d_loss, g_loss, path_length_penalty, path_lengths, r1_penalty

PATH_LENGTH_DECAY = 0.01


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
        self.compute_dtype = torch.float32 if self.amp else rank_zero_choice(compute_dtype(config.precision, device))

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
