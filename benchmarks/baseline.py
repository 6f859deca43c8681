"""The straightforward formulation of StyleGAN2's synthesis layers, as a baseline for zoo's benchmarks.

This is how rosinality's model.py computes on a CPU (its CUDA kernels aside), written here from the paper and
`../shared/docs/stylegan2-formats.md`: each sample's kernel is built (scale · W · s, demodulated), the batch's kernels
are stacked and run as one grouped convolution (groups = batch); FIR filtering is upfirdn2d's native path, which folds
channels into the batch and filters with a single-channel kernel; noise, bias, activation and gain are separate
passes. zoo's own path (zoo/model.py) scales the input and convolves with the shared kernel, filters depthwise, folds
demodulation, noise, bias and gain into one pass, and runs ToRGB as a batched matrix product.
"""

from __future__ import annotations

import contextlib

import torch
from torch.nn import functional as F

from zoo.model import Blur, ModulatedConv2d, StyledConv, ToRGB, Upsample, fused_leaky_relu


def grouped_modulated_conv(module: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    batch, in_channels, height, width = x.shape
    weight = module.scale * module.weight * module.modulation(style).view(batch, 1, in_channels, 1, 1)
    if module.demodulate:
        weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4)) + 1e-8).view(batch, -1, 1, 1, 1)
    out_channels, kernel = weight.shape[1], weight.shape[-1]
    x = x.reshape(1, batch * in_channels, height, width)
    if module.upsample:
        weight = weight.transpose(1, 2).reshape(batch * in_channels, out_channels, kernel, kernel)
        out = F.conv_transpose2d(x, weight, stride=2, groups=batch)
        return module.blur(out.view(batch, out_channels, *out.shape[2:]))
    out = F.conv2d(x, weight.reshape(batch * out_channels, in_channels, kernel, kernel), padding=module.padding, groups=batch)
    return out.view(batch, out_channels, height, width)


def native_upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    batch, channels, height, width = x.shape
    x = x.reshape(-1, 1, height, width)
    if up > 1:
        x = F.pad(x.view(-1, 1, height, 1, width, 1), [0, up - 1, 0, 0, 0, up - 1]).view(-1, 1, height * up, width * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    x = F.conv2d(x, torch.flip(kernel, [0, 1]).view(1, 1, *kernel.shape))
    return x.view(batch, channels, x.shape[-2], x.shape[-1])


def straightforward_styled_conv(module: StyledConv, x, style, noise=None):
    out = module.conv(x, style)
    if noise is None:
        noise = out.new_empty(out.shape[0], 1, *out.shape[2:]).normal_()
    return fused_leaky_relu(out + module.noise.weight * noise, module.activate.bias, clamp=module.activate.clamp)


def straightforward_to_rgb(module: ToRGB, x, style, skip=None):
    out = module.conv(x, style) + module.bias
    return out if skip is None else out + module.upsample(skip)


PATCHES = {
    (ModulatedConv2d, "forward"): grouped_modulated_conv,
    (StyledConv, "forward"): straightforward_styled_conv,
    (ToRGB, "forward"): straightforward_to_rgb,
    (Blur, "forward"): lambda module, x: native_upfirdn2d(x, module.kernel, pad=module.pad),
    (Upsample, "forward"): lambda module, x: native_upfirdn2d(x, module.kernel, up=module.factor, pad=module.pad),
}


@contextlib.contextmanager
def straightforward_formulation():
    """Within the block, zoo's synthesis layers compute the straightforward way (same weights, same results)."""
    originals = {key: getattr(*key) for key in PATCHES}
    for (cls, name), replacement in PATCHES.items():
        setattr(cls, name, replacement)
    try:
        yield
    finally:
        for (cls, name), original in originals.items():
            setattr(cls, name, original)
