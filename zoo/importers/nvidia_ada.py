"""NVIDIA stylegan2-ada-pytorch `.pkl` files, their tensors renamed into rosinality's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..model import Discriminator, Generator, ModelConfig
from .architecture import _check_state, _infer_config
from .foreign import ForeignCheckpoint, _Unreadable
from .metadata import _shown
from .state import UPSAMPLE_GAIN, _as_float32, _block_resolutions, _latent_avg, _numbered, _TensorTable
from .unpickle import _AdaUnpickler, _Inert, _TensorBudget


def _read_ada(path: Path) -> ForeignCheckpoint:
    with open(path, "rb") as handle:
        content = _AdaUnpickler(handle, _TensorBudget(path.stat().st_size)).load()
    if not isinstance(content, dict) or content.get("G_ema") is None:
        raise _Unreadable("a stylegan2-ada-pytorch pickle without G_ema, so no generator to import")
    g_tensors, g_kwargs = _ada_network(content["G_ema"], "G_ema")
    _refuse_conditional(g_kwargs, "c_dim")
    _refuse_architecture(g_kwargs, "G_ema", "synthesis_kwargs.architecture", "skip")
    g_ema, latent_avg = _ada_generator(g_tensors)
    config = _infer_config(
        g_ema,
        lr_mlp=_number(g_kwargs, "mapping_kwargs.lr_multiplier", 0.01),
        conv_clamp=_number(g_kwargs, "synthesis_kwargs.conv_clamp", None),
    )
    _check_ada_kwargs(g_kwargs, config)
    _check_state(g_ema, Generator, config, "G_ema")
    details = {"init_kwargs": g_kwargs}
    discriminator = None
    if content.get("D") is not None:
        d_tensors, d_kwargs = _ada_network(content["D"], "D")
        _refuse_architecture(d_kwargs, "D", "architecture", "resnet")
        discriminator = _ada_discriminator(d_tensors, config)
        _check_state(discriminator, Discriminator, config, "D")
        details["discriminator_init_kwargs"] = d_kwargs
    if content.get("training_set_kwargs"):
        details["training_set_kwargs"] = content["training_set_kwargs"]
    return ForeignCheckpoint(config, g_ema, discriminator, _latent_avg(latent_avg, config), "nvidia-ada-pkl", details)


def _ada_network(obj, what: str) -> tuple[_TensorTable, dict]:
    """A pickled ada module -> (its parameters and persistent buffers by dotted name, its init kwargs)."""
    state = _module_state(obj, what)
    tensors = _TensorTable(what)
    _collect_tensors(state, "", tensors, what)
    init_kwargs = state.get("_init_kwargs")
    return tensors, init_kwargs if isinstance(init_kwargs, dict) else {}


def _module_state(obj, what: str) -> dict:
    if isinstance(obj, dict) and isinstance(obj.get("state"), dict):  # a persistence meta dict
        return obj["state"]
    if isinstance(obj, _Inert) and isinstance(obj.state, dict):  # a plain torch module, pickled by class
        return obj.state
    raise _Unreadable(f"{what} is not a pickled network (found {type(obj).__name__})")


def _collect_tensors(state: dict, prefix: str, out: _TensorTable, what: str, seen: set | None = None) -> None:
    seen = set() if seen is None else seen
    if id(state) in seen or len(seen) > 1024:
        raise _Unreadable(f"{what} holds one module in several places (or in a cycle); it is not a plain network")
    seen.add(id(state))
    transient = state.get("_non_persistent_buffers_set")
    transient = transient if isinstance(transient, (set, frozenset)) else set()
    buffers = {name: tensor for name, tensor in _dict_entry(state, "_buffers").items() if name not in transient}
    found = {prefix + name: tensor for name, tensor in {**_dict_entry(state, "_parameters"), **buffers}.items()}
    out.update(_as_float32({name: tensor for name, tensor in found.items() if tensor is not None}, what))
    for name, child in _dict_entry(state, "_modules").items():
        if child is not None:
            _collect_tensors(_module_state(child, what), f"{prefix}{name}.", out, what, seen)


def _dict_entry(state: dict, key: str) -> dict:
    value = state.get(key)
    return value if isinstance(value, dict) else {}


def _ada_generator(t: _TensorTable) -> tuple[dict, torch.Tensor | None]:
    if "synthesis.b4.const" not in t:
        raise _Unreadable("G_ema is not a StyleGAN2 generator (no synthesis.b4.const); StyleGAN3 is not supported")
    g = {}
    for i in _numbered(t, r"mapping\.fc(\d+)\.weight"):
        g[f"style.{i + 1}.weight"] = t[f"mapping.fc{i}.weight"]
        g[f"style.{i + 1}.bias"] = t[f"mapping.fc{i}.bias"]
    g["input.input"] = t["synthesis.b4.const"].unsqueeze(0)
    _ada_synthesis_layer(g, "conv1", t, "synthesis.b4.conv1", noise_index=0)
    _ada_torgb(g, "to_rgb1", t, "synthesis.b4.torgb")
    for k, res in enumerate(_block_resolutions(t, r"synthesis\.b(\d+)\.conv0\.weight")):
        block = f"synthesis.b{res}"
        _ada_synthesis_layer(g, f"convs.{2 * k}", t, f"{block}.conv0", noise_index=2 * k + 1)
        g[f"convs.{2 * k}.conv.blur.kernel"] = t[f"{block}.conv0.resample_filter"] * UPSAMPLE_GAIN
        _ada_synthesis_layer(g, f"convs.{2 * k + 1}", t, f"{block}.conv1", noise_index=2 * k + 2)
        _ada_torgb(g, f"to_rgbs.{k}", t, f"{block}.torgb")
        g[f"to_rgbs.{k}.upsample.kernel"] = t[f"{block}.resample_filter"] * UPSAMPLE_GAIN
    return g, t.get("mapping.w_avg")


def _ada_synthesis_layer(g: dict, name: str, t: _TensorTable, source: str, noise_index: int) -> None:
    g[f"{name}.conv.weight"] = t[f"{source}.weight"].unsqueeze(0)
    g[f"{name}.conv.modulation.weight"] = t[f"{source}.affine.weight"]
    g[f"{name}.conv.modulation.bias"] = t[f"{source}.affine.bias"]
    g[f"{name}.noise.weight"] = t[f"{source}.noise_strength"].reshape(1)
    g[f"{name}.activate.bias"] = t[f"{source}.bias"]
    g[f"noises.noise_{noise_index}"] = t[f"{source}.noise_const"][None, None]


def _ada_torgb(g: dict, name: str, t: _TensorTable, source: str) -> None:
    g[f"{name}.conv.weight"] = t[f"{source}.weight"].unsqueeze(0)
    g[f"{name}.conv.modulation.weight"] = t[f"{source}.affine.weight"]
    g[f"{name}.conv.modulation.bias"] = t[f"{source}.affine.bias"]
    g[f"{name}.bias"] = t[f"{source}.bias"].reshape(1, -1, 1, 1)


def _ada_discriminator(t: _TensorTable, config: ModelConfig) -> dict:
    size = config.size
    d = {"convs.0.0.weight": t[f"b{size}.fromrgb.weight"], "convs.0.1.bias": t[f"b{size}.fromrgb.bias"]}
    for j, res in enumerate(reversed(config.resolutions[1:]), start=1):
        block, out = f"b{res}", f"convs.{j}"
        d[f"{out}.conv1.0.weight"] = t[f"{block}.conv0.weight"]
        d[f"{out}.conv1.1.bias"] = t[f"{block}.conv0.bias"]
        d[f"{out}.conv2.0.kernel"] = t[f"{block}.conv1.resample_filter"]
        d[f"{out}.conv2.1.weight"] = t[f"{block}.conv1.weight"]
        d[f"{out}.conv2.2.bias"] = t[f"{block}.conv1.bias"]
        d[f"{out}.skip.0.kernel"] = t[f"{block}.skip.resample_filter"]
        d[f"{out}.skip.1.weight"] = t[f"{block}.skip.weight"]
    d["final_conv.0.weight"] = t["b4.conv.weight"]
    d["final_conv.1.bias"] = t["b4.conv.bias"]
    d["final_linear.0.weight"] = t["b4.fc.weight"]
    d["final_linear.0.bias"] = t["b4.fc.bias"]
    d["final_linear.1.weight"] = t["b4.out.weight"]
    d["final_linear.1.bias"] = t["b4.out.bias"]
    return d


def _refuse_conditional(kwargs: dict, key: str) -> None:
    classes = _lookup(kwargs, key) or 0
    if classes:
        raise _Unreadable(f"conditional model ({key}={_shown(classes)}) is not supported; import an unconditional model")


def _refuse_architecture(kwargs: dict, what: str, key: str, supported: str) -> None:
    """ada and TF name the layout in their kwargs; a missing entry means the default, which is the supported one."""
    found = _lookup(kwargs, key) or supported
    if found != supported:
        raise _Unreadable(
            f"{what} architecture {_shown(found)} is not supported; zoo imports StyleGAN2's default '{supported}'"
        )


def _check_ada_kwargs(kwargs: dict, config: ModelConfig) -> None:
    """The init kwargs that describe the architecture must agree with the tensors."""
    stored_and_inferred = [
        ("img_resolution", _lookup(kwargs, "img_resolution"), config.size),
        ("img_channels", _lookup(kwargs, "img_channels"), 3),
        ("z_dim", _lookup(kwargs, "z_dim"), config.style_dim),
        ("w_dim", _lookup(kwargs, "w_dim"), config.style_dim),
        ("mapping_kwargs.num_layers", _lookup(kwargs, "mapping_kwargs.num_layers"), config.n_mlp),
    ]
    base, cap = _lookup(kwargs, "synthesis_kwargs.channel_base"), _lookup(kwargs, "synthesis_kwargs.channel_max")
    if base is not None and cap is not None:
        widths = {res: min(base // res, cap) for res in config.resolutions}
        stored_and_inferred.append(("channel_base/channel_max widths", widths, config.channels))
    for key, stored, inferred in stored_and_inferred:
        if stored is not None and stored != inferred:
            raise _Unreadable(
                f"G_ema's init kwargs give {key} = {_shown(stored)}, but its tensors give {inferred}; "
                "the pickle is inconsistent"
            )


def _lookup(kwargs: dict, dotted: str):
    value = kwargs
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _number(kwargs: dict, dotted: str, default: float | None) -> float | None:
    value = _lookup(kwargs, dotted)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise _Unreadable(f"its {dotted} is {_shown(value)}, not a number")
    return float(value)
