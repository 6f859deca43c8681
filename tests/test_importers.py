"""zoo.importers: format detection by content, the rosinality fixtures, NVIDIA ada / TF pickles built here with the
globals and layout of real ones, refusal of pickles that would run code, and one-line errors for bad files."""

import argparse
import json
import pickle
import re
from pathlib import Path

import nvidia_pickles
import pytest
import torch
from conftest import FIXTURE_CONFIG, ROSINALITY
from PIL import Image

from zoo.checkpoint import save_model
from zoo.errors import ZooError
from zoo.importers import detect_format, import_checkpoint, infer_config, read_checkpoint, unpickle
from zoo.model import Discriminator, Generator, ModelConfig
from zoo.registry import load

TRAIN_FILE = ROSINALITY / "rosinality_small.pt"
CONVERTED_FILE = ROSINALITY / "rosinality_small_converted_legacy.pt"
FIXTURE_CONFIG = ModelConfig(**FIXTURE_CONFIG)
# cfg=auto / paper256 style: 2 mapping layers and channel_base 16384, kept tiny by channel_max 16.
ADA_CONFIG = ModelConfig(size=16, style_dim=16, n_mlp=2, channels={4: 16, 8: 16, 16: 16}, conv_clamp=256)
TF_CONFIG = ModelConfig(size=16, style_dim=16, n_mlp=3, channels={4: 16, 8: 12, 16: 8})
EXACT = dict(atol=1e-5, rtol=0)


def fixture_content():
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(TRAIN_FILE, weights_only=True)


def random_networks(config: ModelConfig, seed: int):
    """A generator and discriminator whose every parameter is random (no zero bias can hide a misplaced tensor)."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        generator, discriminator = Generator(config).eval(), Discriminator(config).eval()
        for parameter in [*generator.parameters(), *discriminator.parameters()]:
            parameter.add_(torch.randn_like(parameter) * 0.1)
        generator.latent_avg = torch.randn(config.style_dim)
    return generator, discriminator


def drifted_copy(generator: Generator) -> Generator:
    copy = Generator(generator.config).eval()
    copy.load_state_dict({name: tensor + 0.5 for name, tensor in generator.state_dict().items()})
    return copy


def assert_same_networks(checkpoint, generator: Generator, discriminator: Discriminator):
    """The imported modules compute what the originals compute: images (stored noise, truncation) and D logits."""
    imported_generator, imported_discriminator = checkpoint.build()
    z = torch.randn(4, generator.config.style_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        image = generator([z])[0]
        torch.testing.assert_close(imported_generator([z])[0], image, **EXACT)
        truncated = generator([z], truncation=0.7)[0]
        torch.testing.assert_close(imported_generator([z], truncation=0.7)[0], truncated, **EXACT)
        torch.testing.assert_close(imported_discriminator(image), discriminator(image), **EXACT)
    torch.testing.assert_close(checkpoint.latent_avg, generator.latent_avg, **EXACT)


# ---------------------------------------------------------------------------------------------------------------------
# rosinality


def test_train_checkpoint_gives_g_ema_and_d_with_the_inferred_config():
    content = fixture_content()
    assert detect_format(TRAIN_FILE) == "rosinality-train"
    checkpoint = read_checkpoint(TRAIN_FILE)
    assert checkpoint.source_format == "rosinality-train"
    assert checkpoint.config == FIXTURE_CONFIG
    assert checkpoint.g_ema.keys() == content["g_ema"].keys()
    for name, tensor in content["g_ema"].items():
        torch.testing.assert_close(checkpoint.g_ema[name], tensor, atol=0, rtol=0)
    assert not torch.equal(checkpoint.g_ema["style.1.weight"], content["g"]["style.1.weight"])
    for name, tensor in content["d"].items():
        torch.testing.assert_close(checkpoint.discriminator[name], tensor, atol=0, rtol=0)
    assert checkpoint.latent_avg is None
    assert checkpoint.details["args"]["n_mlp"] == 3 and checkpoint.details["ada_aug_p"] == 0.0
    json.dumps(checkpoint.details)
    Generator(checkpoint.config).load_state_dict(checkpoint.g_ema, strict=True)
    Discriminator(checkpoint.config).load_state_dict(checkpoint.discriminator, strict=True)


def test_legacy_converted_file_gives_the_same_g_ema_and_its_latent_avg():
    assert detect_format(CONVERTED_FILE) == "rosinality-convert"
    converted = read_checkpoint(CONVERTED_FILE)
    reference = torch.load(ROSINALITY / "reference_small.pt", weights_only=True)
    assert converted.source_format == "rosinality-convert"
    assert converted.config == FIXTURE_CONFIG
    assert converted.discriminator is None
    torch.testing.assert_close(converted.latent_avg, reference["mean_latent"][0], atol=1e-5, rtol=0)
    trained = read_checkpoint(TRAIN_FILE)
    for name, tensor in trained.g_ema.items():
        torch.testing.assert_close(converted.g_ema[name], tensor, atol=0, rtol=0)


def test_bare_g_ema_state_dict(tmp_path):
    path = tmp_path / "generator.weights"
    torch.save(fixture_content()["g_ema"], path)
    assert detect_format(path) == "rosinality-train"
    assert read_checkpoint(path).config == FIXTURE_CONFIG


def test_expected_n_mlp_and_channel_multiplier_are_checked():
    assert read_checkpoint(TRAIN_FILE, n_mlp=3).config.n_mlp == 3
    with pytest.raises(ZooError, match=r"rosinality_small\.pt: n_mlp=8 .*style\.3\.weight"):
        read_checkpoint(TRAIN_FILE, n_mlp=8)
    with pytest.raises(ZooError, match=r"rosinality_small\.pt: channel_multiplier=2 .*input\.input is 24 channels"):
        read_checkpoint(TRAIN_FILE, channel_multiplier=2)


def test_import_checkpoint_installs_a_loadable_model():
    entry = import_checkpoint(TRAIN_FILE, "small")
    assert entry["family"] == "small" and entry["resolution"] == 32
    assert entry["lineage"]["source_format"] == "rosinality-train"
    assert entry["lineage"]["source"] == "rosinality_small.pt"
    assert entry["lineage"]["transform"] == "import"
    reference = torch.load(ROSINALITY / "reference_small.pt", weights_only=True)
    with torch.no_grad():
        image = load("small").generator([reference["z"]])[0]
    torch.testing.assert_close(image, reference["img_plain"], atol=1e-4, rtol=1e-4)


def test_zoo_safetensors_is_detected_and_sent_to_the_zoo_loader(tmp_path, tiny_config):
    path = tmp_path / "model.pt"  # the extension does not matter
    save_model(path, Generator(tiny_config), domain="tiny", family="tiny", lineage={})
    assert detect_format(path) == "zoo-safetensors"
    with pytest.raises(ZooError, match="model.pt: already a zoo checkpoint"):
        read_checkpoint(path)


# ---------------------------------------------------------------------------------------------------------------------
# NVIDIA pickles (built by tests/nvidia_pickles.py)


def write_ada_pickle(directory: Path, **kwargs) -> Path:
    generator, discriminator = random_networks(ADA_CONFIG, seed=1)
    path = directory / "network-snapshot-000100.bin"
    path.write_bytes(
        nvidia_pickles.ada_pickle(
            generator, discriminator, g=drifted_copy(generator), exec_marker=directory / "exec-marker",
            channel_base=16384, channel_max=16, **kwargs,
        )
    )
    return path


def write_tf_pickle(directory: Path, **kwargs) -> Path:
    generator, discriminator = random_networks(TF_CONFIG, seed=2)
    path = directory / "stylegan2-tiny-config-f.pkl"
    path.write_bytes(
        nvidia_pickles.tf_pickle(
            generator, discriminator, g=drifted_copy(generator), exec_marker=directory / "exec-marker", **kwargs
        )
    )
    return path


def test_ada_pickle_round_trip(tmp_path):
    path = write_ada_pickle(tmp_path)
    generator, discriminator = random_networks(ADA_CONFIG, seed=1)
    assert detect_format(path) == "nvidia-ada-pkl"
    checkpoint = read_checkpoint(path, n_mlp=2)
    assert checkpoint.source_format == "nvidia-ada-pkl"
    assert checkpoint.config == ADA_CONFIG and checkpoint.config.conv_clamp == 256
    # every tensor, the blur kernel buffers included, is what zoo's own modules hold
    for name, tensor in generator.state_dict().items():
        torch.testing.assert_close(checkpoint.g_ema[name], tensor, atol=0, rtol=0)
    for name, tensor in discriminator.state_dict().items():
        torch.testing.assert_close(checkpoint.discriminator[name], tensor, atol=0, rtol=0)
    assert_same_networks(checkpoint, generator, discriminator)
    kwargs = checkpoint.details["init_kwargs"]
    assert kwargs["mapping_kwargs"]["num_layers"] == 2 and kwargs["synthesis_kwargs"]["channel_base"] == 16384
    json.dumps(checkpoint.details)
    assert not (tmp_path / "exec-marker").exists()


def test_tf_pickle_round_trip(tmp_path):
    path = write_tf_pickle(tmp_path)
    generator, discriminator = random_networks(TF_CONFIG, seed=2)
    assert detect_format(path) == "nvidia-tf-pkl"
    checkpoint = read_checkpoint(path)
    assert checkpoint.source_format == "nvidia-tf-pkl"
    assert checkpoint.config == TF_CONFIG
    for name, tensor in generator.state_dict().items():
        torch.testing.assert_close(checkpoint.g_ema[name], tensor, **EXACT)
    assert_same_networks(checkpoint, generator, discriminator)
    assert checkpoint.details["static_kwargs"]["mapping_layers"] == 3
    assert not (tmp_path / "exec-marker").exists()


def test_conditional_and_progressive_models_are_refused(tmp_path):
    with pytest.raises(ZooError, match=r"000100\.bin: conditional model \(c_dim=10\) is not supported"):
        read_checkpoint(write_ada_pickle(tmp_path, c_dim=10))
    with pytest.raises(ZooError, match=r"config-f\.pkl: conditional model \(label_size=10\) is not supported"):
        read_checkpoint(write_tf_pickle(tmp_path, label_size=10))
    with pytest.raises(ZooError, match=r"config-f\.pkl: progressive generator \(ToRGB_lod layers.*config-a"):
        read_checkpoint(write_tf_pickle(tmp_path, progressive=True))


@pytest.mark.parametrize(
    "unpickler, function",
    [("_AdaUnpickler", "scalar"), ("_TfUnpickler", "scalar"), ("_TfUnpickler", "_reconstruct")],
)
def test_pickles_from_older_numpy_resolve_like_newer_ones(unpickler, function):
    """Files written before numpy 2 name numpy.core.multiarray; the builders here (numpy 2) write numpy._core."""
    allowed = getattr(unpickle, unpickler).allowed
    assert allowed[f"numpy.core.multiarray.{function}"] is allowed[f"numpy._core.multiarray.{function}"]


# ---------------------------------------------------------------------------------------------------------------------
# Hostile and broken files


def malicious_files(directory: Path, marker: Path) -> list[Path]:
    command = nvidia_pickles.RunsCommand(f"touch {marker}")
    top_level = directory / "model.pkl"
    top_level.write_bytes(pickle.dumps(command, protocol=4))
    rosinality = directory / "550000.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}, "args": command}, rosinality)
    rosinality_legacy = directory / "legacy.pt"
    torch.save({"g_ema": {}, "latent_avg": command}, rosinality_legacy, _use_new_zipfile_serialization=False)
    return [
        top_level,
        rosinality,
        rosinality_legacy,
        write_ada_pickle(directory, plant=command),
        write_tf_pickle(directory, plant=command),
    ]


def test_pickles_that_would_run_a_command_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    for path in malicious_files(tmp_path, marker):
        refusal = rf"^{re.escape(str(path))}: not a StyleGAN2 checkpoint zoo can read \(found a pickle referencing "
        refusal += r"\w+\.system\)"
        with pytest.raises(ZooError, match=refusal):
            read_checkpoint(path)
        assert not marker.exists(), path.name
    assert not (tmp_path / "exec-marker").exists()


def broken_files(directory: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the message must say)."""
    ada = write_ada_pickle(directory)
    noise = torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(5))
    files = {
        "empty.pt": (b"", "file is empty"),
        "random.pkl": (bytes(noise.tolist()), "not a StyleGAN2 checkpoint"),
        "truncated-ada.pkl": (ada.read_bytes()[: ada.stat().st_size // 2], "file is truncated"),
    }
    if TRAIN_FILE.is_file():
        files["truncated.pt"] = (TRAIN_FILE.read_bytes()[:600_000], "file is truncated")
        files["truncated-legacy.pt"] = (CONVERTED_FILE.read_bytes()[:100_000], "file is truncated")
    paths = {}
    for name, (data, message) in files.items():
        (directory / name).write_bytes(data)
        paths[name] = (directory / name, message)
    Image.new("RGB", (8, 8)).save(directory / "face.pt", format="PNG")
    paths["face.pt"] = (directory / "face.pt", "this is a PNG image")
    return paths


def test_broken_files_give_one_line_errors_naming_the_file(tmp_path):
    for name, (path, message) in broken_files(tmp_path).items():
        with pytest.raises(ZooError) as raised:
            read_checkpoint(path)
        text = str(raised.value)
        assert text.startswith(f"{path}: {message}"), text
        assert "\n" not in text and raised.value.__cause__ is None, name
    with pytest.raises(ZooError, match="missing.pt: no such file"):
        detect_format(tmp_path / "missing.pt")


# ---------------------------------------------------------------------------------------------------------------------
# Architecture from shapes


def test_infer_config_recovers_the_standard_256_model_and_rosinality_keys():
    config = ModelConfig.standard(256)
    with torch.device("meta"):
        generator, discriminator = Generator(config), Discriminator(config)
    assert infer_config(generator.state_dict()) == config
    keys = json.loads((ROSINALITY / "rosinality_256_keys.json").read_text())
    for part, module in (("generator", generator), ("discriminator", discriminator)):
        expected = {entry["key"]: tuple(entry["shape"]) for entry in keys[part]}
        assert {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()} == expected


def test_infer_config_keeps_what_weights_cannot_tell():
    with torch.device("meta"):
        state = Generator(ModelConfig(size=16, style_dim=8, n_mlp=2, channels={4: 8, 8: 8, 16: 4})).state_dict()
    config = infer_config(state, lr_mlp=0.1, conv_clamp=256.0, blur_kernel=(1, 2, 1))
    assert (config.lr_mlp, config.conv_clamp, config.blur_kernel) == (0.1, 256.0, (1, 2, 1))
    with pytest.raises(ZooError, match="generator state dict: not a StyleGAN2 generator"):
        infer_config({"weight": torch.zeros(1)})

