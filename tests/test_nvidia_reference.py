"""The ada importer against NVIDIA's own numbers: tensors and outputs made once with stylegan2-ada-pytorch's code
(tests/fixtures/nvidia_ada/README.md), wrapped here in the pickle layout NVIDIA's training loop writes."""

import json
from pathlib import Path

import nvidia_pickles
import pytest
import torch
from conftest import FIXTURES
from safetensors import safe_open

from zoo import import_checkpoint, load
from zoo.importers import read_checkpoint

NVIDIA = FIXTURES / "nvidia_ada"
TOLERANCE = dict(atol=1e-4, rtol=0)


def read_fixture(name: str) -> tuple[dict, dict]:
    with safe_open(str(NVIDIA / f"{name}.safetensors"), "pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, handle.metadata()


def nvidia_snapshot(name: str, directory: Path) -> tuple[Path, dict, dict]:
    """NVIDIA's tensors in a training snapshot .pkl; returns it, the tensors and the metadata."""
    tensors, metadata = read_fixture(name)
    networks = {}
    for network in ("G_ema", "D"):
        prefix = f"{network}."
        state = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
        buffers = {key[len(prefix):] for key in json.loads(metadata[f"{network}.buffers"])}
        networks[network] = nvidia_pickles.ada_network_from_state(
            state, buffers, json.loads(metadata[f"{network}.classes"]), json.loads(metadata[f"{network}.init_kwargs"]),
            nvidia_pickles.exec_marker_source(directory / "exec-marker"),
        )
    path = directory / f"{name}.pkl"
    path.write_bytes(nvidia_pickles.ada_pickle_from_states(networks, exec_marker=directory / "exec-marker", resolution=32))
    return path, tensors, metadata


@pytest.mark.parametrize("name", ["ada_tiny", "ada_tiny_clamp"])
def test_ada_import_reproduces_nvidias_outputs(name, tmp_path):
    path, nvidia, metadata = nvidia_snapshot(name, tmp_path)
    conv_clamp = json.loads(metadata["G_ema.init_kwargs"])["synthesis_kwargs"]["conv_clamp"]
    checkpoint = read_checkpoint(path)
    assert checkpoint.source_format == "nvidia-ada-pkl" and checkpoint.config.conv_clamp == conv_clamp
    generator, discriminator = checkpoint.build()
    with torch.no_grad():
        torch.testing.assert_close(checkpoint.latent_avg, nvidia["G_ema.mapping.w_avg"], **TOLERANCE)
        for psi, tag in ((1.0, "100"), (0.7, "070")):
            w = generator.truncate(generator.mapping(nvidia["z"]), psi)
            torch.testing.assert_close(w, nvidia[f"ws_psi{tag}"][:, 0], **TOLERANCE)
            images, _ = generator([nvidia["z"]], truncation=psi, noise="const")
            torch.testing.assert_close(images, nvidia[f"img_psi{tag}"], **TOLERANCE)
        torch.testing.assert_close(discriminator(nvidia["img_psi100"]), nvidia["d_logits"], **TOLERANCE)
    assert not (tmp_path / "exec-marker").exists()


def test_installed_ada_model_renders_nvidias_images(tmp_path):
    path, nvidia, _ = nvidia_snapshot("ada_tiny_clamp", tmp_path)
    import_checkpoint(path, "nvidia-tiny")
    generator = load("nvidia-tiny").generator
    with torch.no_grad():
        images = generator.synthesis(nvidia["ws_psi070"], noise="const")
    torch.testing.assert_close(images, nvidia["img_psi070"], **TOLERANCE)


def test_conv_clamp_matters_in_the_clamped_fixture(tmp_path):
    """Without the clamp the same tensors give other images, so the clamped case does test the clamp."""
    path, nvidia, _ = nvidia_snapshot("ada_tiny_clamp", tmp_path)
    checkpoint = read_checkpoint(path)
    checkpoint.config.conv_clamp = None
    generator, _ = checkpoint.build()
    with torch.no_grad():
        images = generator.synthesis(nvidia["ws_psi100"], noise="const")
    assert (images - nvidia["img_psi100"]).abs().max() > 0.5
