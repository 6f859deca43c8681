"""NVIDIA-style network pickles for the importer tests, since no real NVIDIA file can be fetched here.

They reference the same globals real files do (`torch_utils.persistence._reconstruct_persistent_obj`, the torch
tensor-rebuild functions with storages embedded as legacy `torch.save` bytes, numpy scalars and arrays,
`dnnlib.util.EasyDict`, `dnnlib.tflib.network.Network`), and their `module_src` / `build_module_src` would create a
marker file if anything exec'd it. They are made from a zoo Generator and Discriminator by the inverse of the
importer's key maps, so a correct importer reproduces the original modules' outputs.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch

from zoo.model import Discriminator, Generator, make_kernel

PROTOCOL = 4  # what pickle.dump used when NVIDIA wrote these files (Python 3.6-3.9)


def _reconstruct_persistent_obj(meta):
    raise AssertionError("only referenced by the pickles, never called")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"


class EasyDict(dict):
    __module__ = "dnnlib.util"


class Network:
    """Pickles like dnnlib.tflib.network.Network: NEWOBJ of the class, then BUILD with the state dict."""

    __module__ = "dnnlib.tflib.network"

    def __init__(self, **state):
        self.state = state

    def __getstate__(self):
        return self.state


class RunsCommand:
    """Unpickles by calling os.system(command), as a malicious checkpoint would."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def exec_marker_source(marker: Path) -> str:
    """Source text that leaves `marker` behind if anyone exec's it."""
    return f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"


@contextlib.contextmanager
def _importable(*objects):
    """Let pickle reference each object by its (fake) module and name while dumping; the modules vanish afterwards."""
    added = []
    try:
        for obj in objects:
            parts = obj.__module__.split(".")
            for depth in range(1, len(parts) + 1):
                name = ".".join(parts[:depth])
                assert name not in sys.modules or name in added, f"{name} is a real module"
                if name not in sys.modules:
                    sys.modules[name] = types.ModuleType(name)
                    added.append(name)
            setattr(sys.modules[obj.__module__], obj.__qualname__, obj)
        yield
    finally:
        for name in added:
            del sys.modules[name]


def _dumps(obj) -> bytes:
    with _importable(_reconstruct_persistent_obj, EasyDict, Network):
        return pickle.dumps(obj, protocol=PROTOCOL)


# ---------------------------------------------------------------------------------------------------------------------
# stylegan2-ada-pytorch


class AdaModule(torch.nn.Module):
    """A torch module that pickles like an instance of an ada `@persistent_class`."""

    def __init__(self, class_name: str, **attributes):
        super().__init__()
        object.__setattr__(self, "_ada_class_name", class_name)
        object.__setattr__(self, "_ada_module_src", "")
        for name, value in attributes.items():
            setattr(self, name, value)

    def with_module_src(self, source: str) -> "AdaModule":
        for module in self.modules():
            object.__setattr__(module, "_ada_module_src", source)
        return self

    def __reduce__(self):
        state = dict(self.__dict__)
        class_name, source = state.pop("_ada_class_name"), state.pop("_ada_module_src")
        meta = dict(type="class", version=6, module_src=source, class_name=class_name, state=state)
        return _reconstruct_persistent_obj, (meta,)


def _param(tensor: torch.Tensor) -> torch.nn.Parameter:
    return torch.nn.Parameter(tensor.detach().clone(), requires_grad=False)


def _ada_fc(weight, bias, lr_multiplier=1.0, activation="linear") -> AdaModule:
    layer = AdaModule(
        "FullyConnectedLayer",
        activation=activation,
        weight_gain=np.float64(lr_multiplier / np.sqrt(weight.shape[1])),
        bias_gain=np.float64(lr_multiplier),
    )
    layer.weight, layer.bias = _param(weight), _param(bias)
    return layer


def _ada_generator(generator: Generator, init_kwargs: EasyDict) -> AdaModule:
    cfg, s = generator.config, generator.state_dict()
    resample_filter = make_kernel(cfg.blur_kernel)  # ada's setup_filter: the normalised outer product

    def synthesis_layer(prefix, noise_index):
        layer = AdaModule("SynthesisLayer", activation="lrelu", conv_clamp=cfg.conv_clamp)
        layer.affine = _ada_fc(s[f"{prefix}.conv.modulation.weight"], s[f"{prefix}.conv.modulation.bias"])
        layer.weight = _param(s[f"{prefix}.conv.weight"][0])
        layer.noise_strength = _param(s[f"{prefix}.noise.weight"][0])
        layer.bias = _param(s[f"{prefix}.activate.bias"])
        layer.register_buffer("resample_filter", resample_filter.clone())
        layer.register_buffer("noise_const", s[f"noises.noise_{noise_index}"][0, 0].clone())
        return layer

    def torgb(prefix):
        layer = AdaModule("ToRGBLayer", conv_clamp=cfg.conv_clamp)
        layer.affine = _ada_fc(s[f"{prefix}.conv.modulation.weight"], s[f"{prefix}.conv.modulation.bias"])
        layer.weight = _param(s[f"{prefix}.conv.weight"][0])
        layer.bias = _param(s[f"{prefix}.bias"].reshape(3))
        return layer

    synthesis = AdaModule("SynthesisNetwork", img_resolution=cfg.size)
    b4 = AdaModule("SynthesisBlock", resolution=4)
    b4.const = _param(s["input.input"][0])
    b4.conv1 = synthesis_layer("conv1", 0)
    b4.torgb = torgb("to_rgb1")
    b4.register_buffer("resample_filter", resample_filter.clone())
    synthesis.b4 = b4
    for k, res in enumerate(cfg.resolutions[1:]):
        block = AdaModule("SynthesisBlock", resolution=res)
        block.conv0 = synthesis_layer(f"convs.{2 * k}", 2 * k + 1)
        block.conv1 = synthesis_layer(f"convs.{2 * k + 1}", 2 * k + 2)
        block.torgb = torgb(f"to_rgbs.{k}")
        block.register_buffer("resample_filter", resample_filter.clone())
        setattr(synthesis, f"b{res}", block)
    mapping = AdaModule("MappingNetwork", num_layers=cfg.n_mlp, w_avg_beta=0.995)
    for i in range(cfg.n_mlp):
        fc = _ada_fc(s[f"style.{i + 1}.weight"], s[f"style.{i + 1}.bias"], cfg.lr_mlp, "lrelu")
        setattr(mapping, f"fc{i}", fc)
    mapping.register_buffer("w_avg", generator.truncation_center().detach().reshape(-1).clone())
    network = AdaModule("Generator", _init_args=(), _init_kwargs=init_kwargs, img_resolution=cfg.size)
    network.synthesis, network.mapping = synthesis, mapping
    return network.eval()


def _ada_discriminator(discriminator: Discriminator, init_kwargs: EasyDict) -> AdaModule:
    cfg, s = discriminator.config, discriminator.state_dict()
    resample_filter = make_kernel(cfg.blur_kernel)

    def conv(weight, bias=None):
        weight_gain = np.float64(1 / np.sqrt(weight[0].numel()))
        layer = AdaModule("Conv2dLayer", conv_clamp=cfg.conv_clamp, weight_gain=weight_gain)
        layer.weight = _param(weight)
        if bias is not None:
            layer.bias = _param(bias)
        layer.register_buffer("resample_filter", resample_filter.clone())
        return layer

    network = AdaModule("Discriminator", _init_args=(), _init_kwargs=init_kwargs)
    for j, res in enumerate(reversed(cfg.resolutions[1:]), start=1):
        block = AdaModule("DiscriminatorBlock", resolution=res, architecture="resnet")
        if j == 1:
            block.fromrgb = conv(s["convs.0.0.weight"], s["convs.0.1.bias"])
        block.conv0 = conv(s[f"convs.{j}.conv1.0.weight"], s[f"convs.{j}.conv1.1.bias"])
        block.conv1 = conv(s[f"convs.{j}.conv2.1.weight"], s[f"convs.{j}.conv2.2.bias"])
        block.skip = conv(s[f"convs.{j}.skip.1.weight"])
        block.register_buffer("resample_filter", resample_filter.clone())
        setattr(network, f"b{res}", block)
    epilogue = AdaModule("DiscriminatorEpilogue", resolution=4)
    epilogue.mbstd = AdaModule("MinibatchStdLayer", group_size=4, num_channels=1)
    epilogue.conv = conv(s["final_conv.0.weight"], s["final_conv.1.bias"])
    epilogue.fc = _ada_fc(s["final_linear.0.weight"], s["final_linear.0.bias"], activation="lrelu")
    epilogue.out = _ada_fc(s["final_linear.1.weight"], s["final_linear.1.bias"])
    network.b4 = epilogue
    return network.eval()


def ada_pickle(
    g_ema: Generator,
    discriminator: Discriminator,
    *,
    exec_marker: Path,
    channel_base: int,
    channel_max: int,
    g: Generator | None = None,
    c_dim: int = 0,
    plant=None,
) -> bytes:
    """A stylegan2-ada-pytorch training snapshot: dict(training_set_kwargs, G, D, G_ema, augment_pipe).

    `plant` is stored inside G_ema's state (to hide a malicious object where a real file has module attributes).
    """
    cfg = g_ema.config
    source = exec_marker_source(exec_marker)
    g_kwargs = EasyDict(
        z_dim=cfg.style_dim,
        c_dim=c_dim,
        w_dim=cfg.style_dim,
        img_resolution=cfg.size,
        img_channels=3,
        mapping_kwargs=EasyDict(num_layers=cfg.n_mlp),
        synthesis_kwargs=EasyDict(
            channel_base=channel_base, channel_max=channel_max, num_fp16_res=4, conv_clamp=cfg.conv_clamp
        ),
    )
    d_kwargs = EasyDict(
        c_dim=c_dim,
        img_resolution=cfg.size,
        img_channels=3,
        architecture="resnet",
        channel_base=channel_base,
        channel_max=channel_max,
        num_fp16_res=4,
        conv_clamp=cfg.conv_clamp,
        block_kwargs=EasyDict(),
        mapping_kwargs=EasyDict(),
        epilogue_kwargs=EasyDict(mbstd_group_size=4),
    )
    snapshot_g_ema = _ada_generator(g_ema, g_kwargs).with_module_src(source)
    if plant is not None:
        snapshot_g_ema.planted = plant
    training_set_kwargs = EasyDict(
        class_name="training.dataset.ImageFolderDataset", path="~/datasets/tiny.zip", use_labels=bool(c_dim),
        max_size=1000, xflip=False, resolution=cfg.size,
    )
    return _dumps(
        dict(
            training_set_kwargs=training_set_kwargs,
            G=_ada_generator(g or g_ema, g_kwargs).with_module_src(source),
            D=_ada_discriminator(discriminator, d_kwargs).with_module_src(source),
            G_ema=snapshot_g_ema,
            augment_pipe=None,
        )
    )


def _easy(value):
    return EasyDict({key: _easy(item) for key, item in value.items()}) if isinstance(value, dict) else value


def ada_network_from_state(state: dict, buffers: set, classes: dict, init_kwargs: dict, source: str) -> AdaModule:
    """An ada network rebuilt from a flat state dict under NVIDIA's names (e.g. NVIDIA's own `G.state_dict()`).

    `classes` maps every submodule's dotted path ('' for the network) to its class name, `buffers` names the
    buffers among the tensors (the rest are parameters).
    """
    modules = {path: AdaModule(class_name) for path, class_name in classes.items()}
    for path in sorted(modules, key=lambda name: name.count(".")):
        if path:
            parent, _, attribute = path.rpartition(".")
            setattr(modules[parent], attribute, modules[path])
    for name, tensor in state.items():
        path, _, attribute = name.rpartition(".")
        if name in buffers:
            modules[path].register_buffer(attribute, tensor.clone())
        else:
            setattr(modules[path], attribute, _param(tensor))
    network = modules[""]
    network._init_args, network._init_kwargs = (), _easy(init_kwargs)
    return network.with_module_src(source).eval()


def ada_pickle_from_states(networks: dict[str, AdaModule], *, exec_marker: Path, resolution: int) -> bytes:
    """The snapshot layout NVIDIA's training loop writes, around networks from `ada_network_from_state`."""
    training_set_kwargs = EasyDict(
        class_name="training.dataset.ImageFolderDataset", path="~/datasets/tiny.zip", use_labels=False,
        max_size=1000, xflip=False, resolution=resolution,
    )
    return _dumps(dict(training_set_kwargs=training_set_kwargs, G=networks["G_ema"], D=networks["D"],
                       G_ema=networks["G_ema"], augment_pipe=None))  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# StyleGAN2 TensorFlow


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy().astype(np.float32)


def _tf_kernel(weight: torch.Tensor) -> torch.Tensor:
    """torch's (out, in, kh, kw) -> TF's (kh, kw, in, out)."""
    return weight.permute(2, 3, 1, 0)


def _tf_modulated_conv(s, prefix, scope, flip=False):
    weight = _tf_kernel(s[f"{prefix}.conv.weight"][0])
    if flip:
        weight = weight.flip(0, 1)
    return [
        (f"{scope}/weight", weight),
        (f"{scope}/mod_weight", s[f"{prefix}.conv.modulation.weight"].T),
        (f"{scope}/mod_bias", s[f"{prefix}.conv.modulation.bias"] - 1),
        (f"{scope}/noise_strength", s[f"{prefix}.noise.weight"][0]),
        (f"{scope}/bias", s[f"{prefix}.activate.bias"]),
    ]


def _tf_torgb(s, prefix, scope):
    return [
        (f"{scope}/weight", _tf_kernel(s[f"{prefix}.conv.weight"][0])),
        (f"{scope}/mod_weight", s[f"{prefix}.conv.modulation.weight"].T),
        (f"{scope}/mod_bias", s[f"{prefix}.conv.modulation.bias"] - 1),
        (f"{scope}/bias", s[f"{prefix}.bias"].reshape(3)),
    ]


def _tf_network(name, variables, source, static_kwargs, components=None):
    return Network(
        version=4,
        name=name,
        static_kwargs=static_kwargs,
        components=components or {},
        build_module_src=source,
        build_func_name=name,
        variables=[(var_name, _array(value)) for var_name, value in variables],
    )


def _tf_generator(generator: Generator, source: str, static_kwargs: dict, progressive: bool) -> Network:
    cfg, s = generator.config, generator.state_dict()
    mapping = []
    for i in range(cfg.n_mlp):
        mapping += [(f"Dense{i}/weight", s[f"style.{i + 1}.weight"].T), (f"Dense{i}/bias", s[f"style.{i + 1}.bias"])]

    def torgb_scope(res):
        return f"ToRGB_lod{cfg.log_size - res.bit_length() + 1}" if progressive else f"{res}x{res}/ToRGB"

    synthesis = [("lod", torch.tensor(0.0)), ("4x4/Const/const", s["input.input"])]
    synthesis += _tf_modulated_conv(s, "conv1", "4x4/Conv") + _tf_torgb(s, "to_rgb1", torgb_scope(4))
    for k, res in enumerate(cfg.resolutions[1:]):
        synthesis += _tf_modulated_conv(s, f"convs.{2 * k}", f"{res}x{res}/Conv0_up", flip=True)
        synthesis += _tf_modulated_conv(s, f"convs.{2 * k + 1}", f"{res}x{res}/Conv1")
        synthesis += _tf_torgb(s, f"to_rgbs.{k}", torgb_scope(res))
    synthesis += [(f"noise{i}", s[f"noises.noise_{i}"]) for i in range(cfg.num_layers)]
    components = {
        "mapping": _tf_network("G_mapping", mapping, source, static_kwargs),
        "synthesis": _tf_network("G_synthesis", synthesis, source, static_kwargs),
    }
    latent_avg = [("dlatent_avg", generator.truncation_center().reshape(-1))]
    return _tf_network("G", latent_avg, source, static_kwargs, components)


def _tf_discriminator(discriminator: Discriminator, source: str, static_kwargs: dict) -> Network:
    cfg, s = discriminator.config, discriminator.state_dict()
    size = cfg.size
    variables = [
        ("lod", torch.tensor(0.0)),
        (f"{size}x{size}/FromRGB/weight", _tf_kernel(s["convs.0.0.weight"])),
        (f"{size}x{size}/FromRGB/bias", s["convs.0.1.bias"]),
    ]
    for j, res in enumerate(reversed(cfg.resolutions[1:]), start=1):
        scope = f"{res}x{res}"
        variables += [
            (f"{scope}/Conv0/weight", _tf_kernel(s[f"convs.{j}.conv1.0.weight"])),
            (f"{scope}/Conv0/bias", s[f"convs.{j}.conv1.1.bias"]),
            (f"{scope}/Conv1_down/weight", _tf_kernel(s[f"convs.{j}.conv2.1.weight"])),
            (f"{scope}/Conv1_down/bias", s[f"convs.{j}.conv2.2.bias"]),
            (f"{scope}/Skip/weight", _tf_kernel(s[f"convs.{j}.skip.1.weight"])),
        ]
    variables += [
        ("4x4/Conv/weight", _tf_kernel(s["final_conv.0.weight"])),
        ("4x4/Conv/bias", s["final_conv.1.bias"]),
        ("4x4/Dense0/weight", s["final_linear.0.weight"].T),
        ("4x4/Dense0/bias", s["final_linear.0.bias"]),
        ("Output/weight", s["final_linear.1.weight"].T),
        ("Output/bias", s["final_linear.1.bias"]),
    ]
    return _tf_network("D", variables, source, static_kwargs)


def tf_pickle(
    gs: Generator,
    discriminator: Discriminator,
    *,
    exec_marker: Path,
    g: Generator | None = None,
    label_size: int = 0,
    progressive: bool = False,
    plant=None,
    static_overrides: dict | None = None,
) -> bytes:
    """A StyleGAN2 TensorFlow snapshot: the tuple (G, D, Gs) of dnnlib Networks.

    `progressive` names the ToRGB layers ToRGB_lod{n} as config-a..d do; `plant` goes into Gs's static kwargs;
    `static_overrides` replaces entries of every network's static kwargs.
    """
    cfg = gs.config
    source = exec_marker_source(exec_marker)
    static_kwargs = dict(
        num_channels=3,
        resolution=cfg.size,
        label_size=label_size,
        latent_size=cfg.style_dim,
        dlatent_size=cfg.style_dim,
        mapping_layers=cfg.n_mlp,
        mapping_lrmul=cfg.lr_mlp,
        architecture="skip",
        resample_kernel=list(cfg.blur_kernel),
        fmap_base=16384,
        fmap_max=512,
    )
    static_kwargs.update(static_overrides or {})
    snapshot_gs = _tf_generator(gs, source, static_kwargs, progressive)
    if plant is not None:
        snapshot_gs.state["static_kwargs"] = {**static_kwargs, "planted": plant}
    snapshot_g = _tf_generator(g or gs, source, static_kwargs, progressive)
    d_kwargs = {**static_kwargs, "architecture": "resnet", "mbstd_group_size": 4}
    return _dumps((snapshot_g, _tf_discriminator(discriminator, source, d_kwargs), snapshot_gs))
