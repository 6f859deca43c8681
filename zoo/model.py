"""StyleGAN2 generator and discriminator in plain PyTorch.

Module and parameter names follow rosinality/stylegan2-pytorch, so a state dict from that project loads as is
(`docs/formats.md` lists the keys). Weights are float32 on CPU, CUDA and MPS; there is no compiled extension. The
synthesis can run its activations and convolutions in bfloat16 (`synthesis(dtype=...)`, NVIDIA's mixed precision with
bfloat16's range instead of float16's clamps): styles and demodulation stay float32, and so does the RGB skip path.

Modulated convolutions run in the "scale the input, convolve with the shared kernel, scale the output" form, which is
mathematically the per-sample grouped convolution of the paper but lets the convolution batch over samples
(`benchmarks/bench_modconv.py` measures the difference).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

NoiseSpec = str | Sequence[torch.Tensor | None]


def standard_channels(size: int, channel_multiplier: int = 2) -> dict[int, int]:
    """rosinality's channel dict: 512 up to 32 px, then halving, scaled by the channel multiplier above 32 px."""
    widths = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    return {res: (width if res <= 32 else width * channel_multiplier) for res, width in widths.items() if res <= size}


@dataclass
class ModelConfig:
    """Architecture of one StyleGAN2 (generator and discriminator share the channel widths)."""

    size: int
    style_dim: int = 512
    n_mlp: int = 8
    lr_mlp: float = 0.01
    channels: dict[int, int] = field(default_factory=dict)
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)
    conv_clamp: float | None = None

    def __post_init__(self):
        self.channels = {int(res): int(width) for res, width in (self.channels or standard_channels(self.size)).items()}
        self.blur_kernel = tuple(int(tap) for tap in self.blur_kernel)
        if self.size < 8 or self.size & (self.size - 1):
            raise ValueError(f"size must be a power of two >= 8, got {self.size}")
        missing = [res for res in self.resolutions if res not in self.channels]
        if missing:
            raise ValueError(f"channels has no width for resolution(s) {missing}")
        self.channels = {res: self.channels[res] for res in self.resolutions}
        if any(width <= 0 for width in self.channels.values()) or self.style_dim <= 0 or self.n_mlp <= 0:
            raise ValueError("style_dim, n_mlp and every channel width must be positive")

    @classmethod
    def standard(cls, size: int, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2, **kwargs):
        return cls(size=size, style_dim=style_dim, n_mlp=n_mlp, channels=standard_channels(size, channel_multiplier), **kwargs)

    @property
    def log_size(self) -> int:
        return self.size.bit_length() - 1

    @property
    def resolutions(self) -> list[int]:
        return [2**i for i in range(2, self.log_size + 1)]

    @property
    def num_layers(self) -> int:
        """Number of modulated 3x3 convolutions (and of noise inputs)."""
        return 2 * self.log_size - 3

    @property
    def n_latent(self) -> int:
        """Number of W+ rows: one per conv plus the last ToRGB."""
        return 2 * self.log_size - 2

    def to_dict(self) -> dict:
        data = asdict(self)
        data["channels"] = {str(res): width for res, width in self.channels.items()}
        data["blur_kernel"] = list(self.blur_kernel)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


# ---------------------------------------------------------------------------------------------------------------------
# Building blocks


def fused_leaky_relu(x, bias, negative_slope=0.2, scale=2**0.5, clamp=None):
    """leaky_relu(x + bias) * sqrt(2), the bias broadcast on dim 1; optionally clamped (NVIDIA's conv_clamp)."""
    out = F.leaky_relu(x + bias.to(x.dtype).view(1, -1, *([1] * (x.ndim - 2))), negative_slope) * scale
    return out if clamp is None else out.clamp(-clamp, clamp)


def make_kernel(taps: Sequence[int]) -> torch.Tensor:
    kernel = torch.tensor(taps, dtype=torch.float32)
    if kernel.ndim == 1:
        kernel = kernel[None, :] * kernel[:, None]
    return kernel / kernel.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)):
    """Upsample by zero insertion, pad (negative pads crop), filter with the flipped kernel, then subsample.

    StyleGAN2's filters take the fast paths: a 2x upsampling is one transposed depthwise convolution (it inserts the
    zeros and pads by itself), and a symmetric pad is the convolution's own padding. Neither makes a zero-inserted or
    padded copy of x, which in a batched backward pass costs more than the filtering (benchmarks/bench_inversion.py).
    """
    channels, taps = x.shape[1], kernel.shape[0]
    transposed_padding, output_padding = taps - 1 - pad[0], up - 1 + pad[1] - pad[0]
    if up > 1 and transposed_padding >= 0 and 0 <= output_padding < up:
        weight = depthwise_weight(kernel, channels, x)
        x = F.conv_transpose2d(x, weight, stride=up, padding=transposed_padding, output_padding=output_padding, groups=channels)
    else:
        x = zero_insert(x, up) if up > 1 else x
        weight = depthwise_weight(torch.flip(kernel, [0, 1]), channels, x)
        if pad[0] == pad[1] >= 0:
            x = F.conv2d(x, weight, padding=pad[0], groups=channels)
        else:
            x = F.conv2d(F.pad(x, [pad[0], pad[1], pad[0], pad[1]]), weight, groups=channels)
    return x[:, :, ::down, ::down] if down > 1 else x


def zero_insert(x: torch.Tensor, up: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H·up, W·up) with x at every up-th row and column, zeros elsewhere."""
    batch, channels, height, width = x.shape
    x = F.pad(x.reshape(batch, channels, height, 1, width, 1), [0, up - 1, 0, 0, 0, up - 1])
    return x.reshape(batch, channels, height * up, width * up)


def depthwise_weight(kernel: torch.Tensor, channels: int, like: torch.Tensor) -> torch.Tensor:
    # Contiguous: oneDNN's fast depthwise path refuses an expanded (stride-0) weight.
    return kernel.to(like)[None, None].expand(channels, 1, *kernel.shape).contiguous()


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class Upsample(nn.Module):
    """2x FIR upsampling of the RGB skip path."""

    def __init__(self, taps, factor=2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(taps) * factor**2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Blur(nn.Module):
    def __init__(self, taps, pad, upsample_factor=1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(taps) * upsample_factor**2)
        self.pad = pad

    def forward(self, x):
        return upfirdn2d(x, self.kernel, pad=self.pad)


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate: N(0,1) weights scaled by 1/sqrt(fan_in) at run time."""

    def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.stride, self.padding = stride, padding
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None

    def forward(self, x):
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.conv2d(x, (self.weight * self.scale).to(x.dtype), bias=bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate and a learning-rate multiplier (0.01 in the mapping network)."""

    def __init__(self, in_dim, out_dim, bias=True, bias_init=0.0, lr_mul=1.0, activation=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.activation = activation
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x):
        bias = None if self.bias is None else self.bias * self.lr_mul
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias=bias)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels, clamp=None):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.clamp = clamp

    def forward(self, x):
        return fused_leaky_relu(x, self.bias, clamp=self.clamp)


class ModulatedConv2d(nn.Module):
    """Per-sample modulated (and optionally demodulated) convolution, optionally upsampling 2x."""

    def __init__(self, in_channel, out_channel, kernel_size, style_dim, demodulate=True, upsample=False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.demodulate = demodulate
        self.upsample = upsample
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)

    def forward(self, x, style):
        out, demodulation = self.convolve(x, style)
        return out if demodulation is None else out * demodulation.to(out.dtype)[:, :, None, None]

    def convolve(self, x, style):
        """The modulated convolution before demodulation, and the (batch, out) demodulation factors (None if off).

        Callers that go on with element-wise work (StyledConv) fold the factors into it instead of a separate pass.
        The convolution runs in x's dtype; the demodulation factors are computed and returned in the weights' dtype.
        """
        styles = self.modulation(style)
        weight = self.weight[0] * self.scale
        demodulation = self.demodulation(weight, styles) if self.demodulate else None
        if weight.shape[-1] == 1 and not self.upsample:
            # 1x1 (ToRGB): modulating the small per-sample kernels beats scaling the wide input.
            kernels = weight[None, :, :, 0, 0] * styles[:, None, :]
            out = torch.bmm(kernels.to(x.dtype), x.flatten(2)).view(x.shape[0], -1, *x.shape[2:])
        else:
            x = x * styles.to(x.dtype)[:, :, None, None]
            weight = weight.to(x.dtype)
            if self.upsample:
                out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
            else:
                out = F.conv2d(x, weight, padding=self.padding)
        return out, demodulation

    @staticmethod
    def demodulation(weight, styles):
        """rsqrt of the squared norm of each sample's modulated kernel, per output channel: shape (batch, out)."""
        return torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).T + 1e-8)


class NoiseInjection(nn.Module):
    """The learned strength of a layer's per-pixel noise (StyledConv adds weight · noise)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))


class ConstantInput(nn.Module):
    def __init__(self, channel, size=4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch):
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, style_dim, upsample=False, blur_kernel=(1, 3, 3, 1), clamp=None):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel, clamp=clamp)

    def forward(self, x, style, noise=None):
        """conv -> demodulate -> + noise -> + bias -> leaky ReLU · sqrt(2), in two passes over the output.

        leaky_relu(y)·√2 = leaky_relu(√2·y), so √2 is folded into the small factors before the one big addcmul.
        """
        out, demodulation = self.conv.convolve(x, style)
        if noise is None:
            noise = out.new_empty(out.shape[0], 1, *out.shape[2:]).normal_()
        gain, dtype = 2**0.5, out.dtype
        offset = (gain * self.activate.bias).to(dtype).view(1, -1, 1, 1) + ((gain * self.noise.weight) * noise).to(dtype)
        out = torch.addcmul(offset, out, (gain * demodulation[:, :, None, None]).to(dtype))
        out = F.leaky_relu(out, 0.2, inplace=True)
        clamp = self.activate.clamp
        return out if clamp is None else out.clamp_(-clamp, clamp)


class ToRGB(nn.Module):
    def __init__(self, in_channel, style_dim, upsample=True, blur_kernel=(1, 3, 3, 1), clamp=None):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.clamp = clamp

    def forward(self, x, style, skip=None):
        out = self.conv(x, style).to(self.bias.dtype) + self.bias
        if self.clamp is not None:
            out = out.clamp(-self.clamp, self.clamp)
        return out if skip is None else out + self.upsample(skip)


# ---------------------------------------------------------------------------------------------------------------------
# Generator


class Generator(nn.Module):
    """z -> w (mapping network `style`) -> image (synthesis network).

    `latent_avg` is the truncation centre (NVIDIA's `w_avg`); it is a non-persistent buffer, so `state_dict()` keeps
    rosinality's layout, and checkpoint files store it beside the weights.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        cfg = config
        channels, blur, clamp = cfg.channels, cfg.blur_kernel, cfg.conv_clamp
        self.style = nn.Sequential(
            PixelNorm(),
            *[EqualLinear(cfg.style_dim, cfg.style_dim, lr_mul=cfg.lr_mlp, activation=True) for _ in range(cfg.n_mlp)],
        )
        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], 3, cfg.style_dim, blur_kernel=blur, clamp=clamp)
        self.to_rgb1 = ToRGB(channels[4], cfg.style_dim, upsample=False, clamp=clamp)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer in range(cfg.num_layers):
            res = 2 ** ((layer + 5) // 2)
            self.noises.register_buffer(f"noise_{layer}", torch.randn(1, 1, res, res))
        in_channel = channels[4]
        for res in cfg.resolutions[1:]:
            out_channel = channels[res]
            self.convs.append(StyledConv(in_channel, out_channel, 3, cfg.style_dim, upsample=True, blur_kernel=blur, clamp=clamp))
            self.convs.append(StyledConv(out_channel, out_channel, 3, cfg.style_dim, blur_kernel=blur, clamp=clamp))
            self.to_rgbs.append(ToRGB(out_channel, cfg.style_dim, blur_kernel=blur, clamp=clamp))
            in_channel = out_channel
        self.register_buffer("latent_avg", None, persistent=False)

    @property
    def n_latent(self) -> int:
        return self.config.n_latent

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    # -- latents ------------------------------------------------------------------------------------------------------

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return self.style(z)

    def mean_latent(self, n_latent: int = 4096, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean of `n_latent` mapped N(0, I) samples, shape (1, style_dim)."""
        device = self.input.input.device
        z = torch.randn(n_latent, self.config.style_dim, generator=generator, device=device if generator is None else "cpu")
        return self.style(z.to(device)).mean(0, keepdim=True)

    def truncation_center(self) -> torch.Tensor:
        """The stored mean latent; computed from 4096 seeded samples (and stored) if the model has none."""
        if self.latent_avg is None:
            with torch.no_grad():
                self.latent_avg = self.mean_latent(4096, generator=torch.Generator().manual_seed(0))[0]
        return self.latent_avg.view(1, -1)

    def truncate(self, w: torch.Tensor, truncation: float, center: torch.Tensor | None = None) -> torch.Tensor:
        """Move w (or W+) toward `center` (default: the stored mean latent): center + t (w - center)."""
        if truncation == 1:
            return w
        center = self.truncation_center() if center is None else center.view(1, -1)
        return center + truncation * (w - center)

    def make_noise(self, batch: int = 1, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Fresh N(0, 1) noise maps, one (batch, 1, r, r) tensor per conv layer."""
        device = self.input.input.device
        return [
            torch.randn(batch, 1, *buffer.shape[2:], generator=generator).to(device)
            for buffer in self.noises.buffers()
        ]

    def resolve_noise(self, noise: NoiseSpec) -> list[torch.Tensor | None]:
        """'const' = the stored buffers, 'random' = fresh per call (None per layer), or an explicit list."""
        if noise == "const":
            return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        if noise == "random":
            return [None] * self.num_layers
        if isinstance(noise, str) or len(noise) != self.num_layers:
            raise ValueError(f"noise must be 'const', 'random' or a list of {self.num_layers} tensors")
        return list(noise)

    def styles_to_latent(self, styles: Sequence[torch.Tensor], inject_index: int | None = None) -> torch.Tensor:
        """One style: (B, D) broadcast to every layer or (B, n_latent, D) used as W+. Two: style mixing at inject_index."""
        if len(styles) == 1:
            style = styles[0]
            return style if style.ndim == 3 else style.unsqueeze(1).repeat(1, self.n_latent, 1)
        if inject_index is None:
            inject_index = int(torch.randint(1, self.n_latent, ()).item())
        first = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
        second = styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
        return torch.cat([first, second], 1)

    # -- synthesis ----------------------------------------------------------------------------------------------------

    def forward(
        self,
        styles: torch.Tensor | Sequence[torch.Tensor],
        *,
        input_is_latent: bool = False,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        inject_index: int | None = None,
        noise: NoiseSpec = "const",
        return_latents: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """rosinality's call: `image, latents = G([z])`.

        styles: a tensor or a list of one or two tensors, z unless `input_is_latent` (then w, or W+ of shape
        (B, n_latent, D)). Two styles are mixed at `inject_index` (random if None). Noise defaults to the stored maps,
        so the same latent always gives the same image; pass noise='random' for rosinality's randomize_noise=True.
        Returns (image, W+ latents if return_latents else None).
        """
        if isinstance(styles, torch.Tensor):
            styles = [styles]
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        styles = [self.truncate(s, truncation, truncation_latent) for s in styles]
        latent = self.styles_to_latent(styles[:2], inject_index)
        image = self.synthesis(latent, noise=noise)
        return image, (latent if return_latents else None)

    def synthesis(
        self,
        latent: torch.Tensor,
        noise: NoiseSpec = "const",
        return_features: bool = False,
        replace_features: dict[int, torch.Tensor] | None = None,
        dtype: torch.dtype | None = None,
    ):
        """W+ (B, n_latent, D) -> image.

        With return_features, also returns {resolution: activation after that resolution's convs}; replace_features
        swaps such activations in before the resolution's ToRGB and the layers above (the official code's feature swap).
        dtype: the activations' and convolutions' dtype (default: the weights'); the image is in the weights' dtype.
        """
        noise = self.resolve_noise(noise)
        replace_features = replace_features or {}
        features = {}

        def at_resolution(res, out):
            out = replace_features.get(res, out)
            if return_features:
                features[res] = out
            return out

        out = self.conv1(self.input(latent.shape[0]).to(dtype or self.input.input.dtype), latent[:, 0], noise=noise[0])
        out = at_resolution(4, out)
        skip = self.to_rgb1(out, latent[:, 1])
        index = 1
        for res, up_conv, conv, noise_up, noise_conv, to_rgb in zip(
            self.config.resolutions[1:], self.convs[::2], self.convs[1::2], noise[1::2], noise[2::2], self.to_rgbs
        ):
            out = up_conv(out, latent[:, index], noise=noise_up)
            out = conv(out, latent[:, index + 1], noise=noise_conv)
            out = at_resolution(res, out)
            skip = to_rgb(out, latent[:, index + 2], skip)
            index += 2
        return (skip, features) if return_features else skip


# ---------------------------------------------------------------------------------------------------------------------
# Discriminator


class ConvLayer(nn.Sequential):
    def __init__(self, in_channel, out_channel, kernel_size, downsample=False, blur_kernel=(1, 3, 3, 1), bias=True, activate=True, clamp=None):
        layers = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
        stride, padding = (2, 0) if downsample else (1, kernel_size // 2)
        layers.append(EqualConv2d(in_channel, out_channel, kernel_size, stride, padding, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channel, clamp=clamp))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, in_channel, out_channel, blur_kernel=(1, 3, 3, 1), clamp=None):
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3, clamp=clamp)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel, clamp=clamp)
        self.skip = ConvLayer(in_channel, out_channel, 1, downsample=True, blur_kernel=blur_kernel, activate=False, bias=False)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append the mean over features of the within-group standard deviation as one extra channel.

    The group is the largest size <= group_size that divides the batch (rosinality requires min(4, B) to divide it).
    """
    batch, channels, height, width = x.shape
    group = next(g for g in range(min(batch, group_size), 0, -1) if batch % g == 0)
    stddev = x.view(group, -1, 1, channels, height, width)
    stddev = torch.sqrt(stddev.var(0, unbiased=False) + 1e-8)
    stddev = stddev.mean([2, 3, 4], keepdim=True).squeeze(2)
    return torch.cat([x, stddev.repeat(group, 1, height, width)], 1)


class Discriminator(nn.Module):
    """Residual discriminator with minibatch-stddev; `convs[0]` is FromRGB, `convs[j]` the block at size / 2^(j-1)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        channels, clamp = config.channels, config.conv_clamp
        convs = [ConvLayer(3, channels[config.size], 1, clamp=clamp)]
        in_channel = channels[config.size]
        for res in reversed(config.resolutions[1:]):
            out_channel = channels[res // 2]
            convs.append(ResBlock(in_channel, out_channel, config.blur_kernel, clamp=clamp))
            in_channel = out_channel
        self.convs = nn.Sequential(*convs)
        self.final_conv = ConvLayer(in_channel + 1, channels[4], 3, clamp=clamp)
        self.final_linear = nn.Sequential(
            EqualLinear(channels[4] * 4 * 4, channels[4], activation=True),
            EqualLinear(channels[4], 1),
        )

    def forward(self, image: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Logits (B, 1) in the weights' dtype; `dtype` is the blocks' activations' and convolutions' dtype (default:
        the image's). The 4x4 epilogue (minibatch stddev, final conv, linear layers) runs in the weights' dtype."""
        features = self.convs(image.to(dtype or image.dtype)).to(self.final_conv[0].weight.dtype)
        out = self.final_conv(minibatch_stddev(features))
        return self.final_linear(out.view(out.shape[0], -1))
