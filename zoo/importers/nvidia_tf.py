"""NVIDIA StyleGAN2 TensorFlow `.pkl` files (dnnlib (G, D, Gs) snapshots), renamed into rosinality's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..model import Discriminator, Generator, ModelConfig, make_kernel
from .architecture import _check_state, _infer_config
from .foreign import ForeignCheckpoint, _Unreadable
from .metadata import _shown
from .nvidia_ada import _number, _refuse_architecture, _refuse_conditional
from .state import UPSAMPLE_GAIN, _as_float32, _block_resolutions, _latent_avg, _numbered, _TensorTable
from .unpickle import _TfNetwork, _TfUnpickler


def _read_tf(path: Path) -> ForeignCheckpoint:
    with open(path, "rb") as handle:
        content = _TfUnpickler(handle).load()
    if not (isinstance(content, tuple) and len(content) == 3 and all(isinstance(n, _TfNetwork) for n in content)):
        raise _Unreadable("a dnnlib pickle, but not the (G, D, Gs) tuple of a StyleGAN2 TensorFlow snapshot")
    _, tf_d, tf_gs = content
    kwargs = tf_gs.state.get("static_kwargs") or {}
    g_variables = _tf_variables(tf_gs, "Gs")
    if any("ToRGB_lod" in name for name in g_variables):
        raise _Unreadable(
            "progressive generator (ToRGB_lod layers: StyleGAN2 config-a to config-d, or StyleGAN1) is not supported; "
            "zoo imports config-e/f skip generators such as stylegan2-ffhq-config-f.pkl"
        )
    _refuse_conditional(kwargs, "label_size")
    _refuse_architecture(kwargs, "Gs", "architecture", "skip")
    taps = _resample_taps(kwargs.get("resample_kernel") or (1, 3, 3, 1))
    g_ema, latent_avg = _tf_generator(g_variables, taps)
    config = _infer_config(g_ema, lr_mlp=_number(kwargs, "mapping_lrmul", 0.01), blur_kernel=taps)
    _check_state(g_ema, Generator, config, "Gs")
    discriminator = _tf_discriminator(_tf_variables(tf_d, "D"), config)
    _check_state(discriminator, Discriminator, config, "D")
    details = {"static_kwargs": kwargs}
    return ForeignCheckpoint(config, g_ema, discriminator, _latent_avg(latent_avg, config), "nvidia-tf-pkl", details)


def _tf_variables(network: _TfNetwork, what: str) -> _TensorTable:
    """All variables of a Network and its components, named like `mapping/Dense0/weight` (component key + scope)."""
    table = _TensorTable(what)
    _collect_tf_variables(network, "", table, what)
    return table


def _collect_tf_variables(network, prefix: str, table: _TensorTable, what: str, seen: set | None = None) -> None:
    seen = set() if seen is None else seen
    if not isinstance(network, _TfNetwork) or id(network) in seen or len(seen) > 64:
        raise _Unreadable(f"{what} has a component that is not a dnnlib Network of its own")
    seen.add(id(network))
    variables = {}
    for entry in network.state.get("variables") or []:
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], np.ndarray)):
            raise _Unreadable(f"{what} has a variable that is not a (name, array) pair")
        variables[f"{prefix}{entry[0]}"] = entry[1]
    table.update(_as_float32(variables, what))
    for key, component in (network.state.get("components") or {}).items():
        _collect_tf_variables(component, f"{prefix}{key}/", table, what, seen)


def _tf_generator(v: _TensorTable, taps: tuple[int, ...]) -> tuple[dict, torch.Tensor | None]:
    up_kernel = make_kernel(taps) * UPSAMPLE_GAIN
    g = {}
    for i in _numbered(v, r"mapping/Dense(\d+)/weight"):
        g[f"style.{i + 1}.weight"] = v[f"mapping/Dense{i}/weight"].T
        g[f"style.{i + 1}.bias"] = v[f"mapping/Dense{i}/bias"]
    g["input.input"] = v["synthesis/4x4/Const/const"]
    _tf_modulated_conv(g, "conv1", v, "synthesis/4x4/Conv")
    _tf_torgb(g, "to_rgb1", v, "synthesis/4x4/ToRGB")
    for k, res in enumerate(_block_resolutions(v, r"synthesis/(\d+)x\1/Conv0_up/weight")):
        scope = f"synthesis/{res}x{res}"
        _tf_modulated_conv(g, f"convs.{2 * k}", v, f"{scope}/Conv0_up", flip=True)
        g[f"convs.{2 * k}.conv.blur.kernel"] = up_kernel.clone()
        _tf_modulated_conv(g, f"convs.{2 * k + 1}", v, f"{scope}/Conv1")
        _tf_torgb(g, f"to_rgbs.{k}", v, f"{scope}/ToRGB")
        g[f"to_rgbs.{k}.upsample.kernel"] = up_kernel.clone()
    for i in _numbered(v, r"synthesis/noise(\d+)"):
        g[f"noises.noise_{i}"] = v[f"synthesis/noise{i}"]
    return {name: tensor.contiguous() for name, tensor in g.items()}, v.get("dlatent_avg")


def _resample_taps(value) -> tuple[int, ...]:
    """TF's resample_kernel: a short list of positive integer taps (a long one would make a huge 2-D kernel)."""
    if not (isinstance(value, (list, tuple)) and 1 <= len(value) <= 16
            and all(type(tap) is int and 0 < tap < 2**16 for tap in value)):
        raise _Unreadable(f"its resample_kernel {_shown(value)} is not a short list of positive integer taps")
    return tuple(value)


def _tf_conv(weight: torch.Tensor) -> torch.Tensor:
    """TF's (kh, kw, in, out) kernel -> torch's (out, in, kh, kw)."""
    return weight.permute(3, 2, 0, 1)


def _tf_modulated_conv(g: dict, name: str, v: _TensorTable, scope: str, flip: bool = False) -> None:
    weight = v[f"{scope}/weight"]
    if flip:  # TF's upsampling conv applies its kernel rotated by 180 degrees relative to rosinality's
        weight = weight.flip(0, 1)
    g[f"{name}.conv.weight"] = _tf_conv(weight).unsqueeze(0)
    g[f"{name}.conv.modulation.weight"] = v[f"{scope}/mod_weight"].T
    g[f"{name}.conv.modulation.bias"] = v[f"{scope}/mod_bias"] + 1  # TF adds the 1 at run time, rosinality stores it
    g[f"{name}.noise.weight"] = v[f"{scope}/noise_strength"].reshape(1)
    g[f"{name}.activate.bias"] = v[f"{scope}/bias"]


def _tf_torgb(g: dict, name: str, v: _TensorTable, scope: str) -> None:
    g[f"{name}.conv.weight"] = _tf_conv(v[f"{scope}/weight"]).unsqueeze(0)
    g[f"{name}.conv.modulation.weight"] = v[f"{scope}/mod_weight"].T
    g[f"{name}.conv.modulation.bias"] = v[f"{scope}/mod_bias"] + 1
    g[f"{name}.bias"] = v[f"{scope}/bias"].reshape(1, -1, 1, 1)


def _tf_discriminator(v: _TensorTable, config: ModelConfig) -> dict:
    kernel = make_kernel(config.blur_kernel)
    size = config.size
    d = {
        "convs.0.0.weight": _tf_conv(v[f"{size}x{size}/FromRGB/weight"]),
        "convs.0.1.bias": v[f"{size}x{size}/FromRGB/bias"],
    }
    for j, res in enumerate(reversed(config.resolutions[1:]), start=1):
        scope, out = f"{res}x{res}", f"convs.{j}"
        d[f"{out}.conv1.0.weight"] = _tf_conv(v[f"{scope}/Conv0/weight"])
        d[f"{out}.conv1.1.bias"] = v[f"{scope}/Conv0/bias"]
        d[f"{out}.conv2.0.kernel"] = kernel.clone()
        d[f"{out}.conv2.1.weight"] = _tf_conv(v[f"{scope}/Conv1_down/weight"])
        d[f"{out}.conv2.2.bias"] = v[f"{scope}/Conv1_down/bias"]
        d[f"{out}.skip.0.kernel"] = kernel.clone()
        d[f"{out}.skip.1.weight"] = _tf_conv(v[f"{scope}/Skip/weight"])
    d["final_conv.0.weight"] = _tf_conv(v["4x4/Conv/weight"])
    d["final_conv.1.bias"] = v["4x4/Conv/bias"]
    d["final_linear.0.weight"] = v["4x4/Dense0/weight"].T
    d["final_linear.0.bias"] = v["4x4/Dense0/bias"]
    d["final_linear.1.weight"] = v["Output/weight"].T
    d["final_linear.1.bias"] = v["Output/bias"]
    return {name: tensor.contiguous() for name, tensor in d.items()}
