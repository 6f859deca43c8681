"""The architecture inferred from a generator's tensor shapes (`infer_config`), and state checked against it."""

from __future__ import annotations

import torch

from ..errors import ZooError
from ..model import ModelConfig, make_kernel, standard_channels
from .foreign import _Unreadable
from .state import _numbered, _required


def infer_config(
    g_state: dict, *, lr_mlp: float = 0.01, conv_clamp: float | None = None, blur_kernel=None
) -> ModelConfig:
    """The ModelConfig of a rosinality-layout generator state dict, from its tensor shapes.

    lr_mlp and conv_clamp cannot be read from weights; the blur kernel is read from the first upsampling conv's
    buffer when that holds data (not on the meta device), else it is `blur_kernel` or [1, 3, 3, 1].
    """
    try:
        return _infer_config(g_state, lr_mlp=lr_mlp, conv_clamp=conv_clamp, blur_kernel=blur_kernel)
    except _Unreadable as problem:
        raise ZooError(f"generator state dict: {problem}") from None


def _infer_config(g_state: dict, lr_mlp=0.01, conv_clamp=None, blur_kernel=None) -> ModelConfig:
    mapping = _numbered(g_state, r"style\.(\d+)\.weight", start=1)
    to_rgbs = _numbered(g_state, r"to_rgbs\.(\d+)\.conv\.weight")
    if not mapping or "input.input" not in g_state or not to_rgbs:
        raise _Unreadable(
            "not a StyleGAN2 generator in rosinality's layout (it needs style.1.weight, input.input and to_rgbs.0)"
        )
    channels = {4: g_state["input.input"].shape[1]}
    for k in to_rgbs:
        channels[8 * 2**k] = _required(g_state, f"convs.{2 * k}.conv.weight").shape[1]
    kernel = g_state.get("convs.0.conv.blur.kernel")
    if blur_kernel is None and kernel is not None and not kernel.is_meta:
        blur_kernel = _blur_taps(kernel)
    try:
        return ModelConfig(
            size=8 * 2 ** to_rgbs[-1],
            style_dim=g_state["style.1.weight"].shape[1],
            n_mlp=len(mapping),
            lr_mlp=lr_mlp,
            channels=channels,
            blur_kernel=blur_kernel or (1, 3, 3, 1),
            conv_clamp=conv_clamp,
        )
    except ValueError as error:
        raise _Unreadable(f"its tensor shapes give no valid StyleGAN2 architecture ({error})") from None


def _blur_taps(kernel: torch.Tensor) -> tuple[int, ...]:
    """The integer taps whose normalised outer product is this (possibly gain-scaled) 2-D FIR kernel."""
    kernel = kernel.detach().to(torch.float64)
    row = kernel.sum(dim=1) if kernel.ndim == 2 else kernel.new_zeros(0)
    if not len(row) or (row <= 0).any():
        raise _Unreadable(f"blur kernel of shape {list(kernel.shape)} is not a 2-D low-pass FIR filter")
    taps = tuple(int(round(tap)) for tap in (row / row.min()).tolist())
    if not torch.allclose(make_kernel(taps).to(torch.float64), kernel / kernel.sum(), atol=1e-6):
        raise _Unreadable("blur kernel is not the outer product of integer taps, which zoo's model needs")
    return taps


def _check_expectations(config: ModelConfig, n_mlp: int | None, channel_multiplier: int | None) -> None:
    """The user's --n-mlp / --channel-multiplier must describe the file; the message names the tensor that differs."""
    if n_mlp is not None and n_mlp != config.n_mlp:
        raise _Unreadable(
            f"n_mlp={n_mlp} does not match the file: its mapping network has {config.n_mlp} layers "
            f"(style.1.weight to style.{config.n_mlp}.weight); pass n_mlp={config.n_mlp} or leave it out"
        )
    if channel_multiplier is None:
        return
    standard = standard_channels(config.size, channel_multiplier)
    for res, width in config.channels.items():
        if standard[res] != width:
            raise _Unreadable(
                f"channel_multiplier={channel_multiplier} does not match the file: {_width_tensor(res)} is {width} "
                f"channels wide at {res} px, where channel_multiplier {channel_multiplier} gives {standard[res]}; "
                "leave it out (zoo reads the widths from the file)"
            )


def _width_tensor(res: int) -> str:
    return "input.input" if res == 4 else f"convs.{2 * (res.bit_length() - 4)}.conv.weight"


def _check_state(state: dict, module_class, config: ModelConfig, what: str) -> None:
    """The state dict must load strictly into module_class(config)."""
    with torch.device("meta"):
        expected = {name: tuple(tensor.shape) for name, tensor in module_class(config).state_dict().items()}
    wrong = [name for name in expected if name in state and tuple(state[name].shape) != expected[name]]
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if wrong:
        problem = (
            f"tensor {wrong[0]} has shape {list(state[wrong[0]].shape)} where the architecture inferred from "
            f"the other tensors needs {list(expected[wrong[0]])}"
        )
    elif missing:
        problem = f"tensor {missing[0]} is missing ({len(missing)} missing in all)"
    elif unexpected:
        problem = f"unexpected tensor {unexpected[0]} ({len(unexpected)} in all)"
    else:
        return
    raise _Unreadable(f"{what}: {problem}; it is not a standard StyleGAN2 network")
