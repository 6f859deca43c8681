"""zoo's safetensors checkpoint format: round trip, metadata, and one-line errors on damaged files."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from zoo.checkpoint import load_model, mapping_sha256, read_info, save_model
from zoo.errors import ZooError
from zoo.files import sha256_file
from zoo.model import Discriminator, Generator


@pytest.fixture
def saved(tmp_path, tiny_config):
    torch.manual_seed(0)
    generator, discriminator = Generator(tiny_config).eval(), Discriminator(tiny_config).eval()
    path = tmp_path / "tiny.safetensors"
    sha256 = save_model(path, generator, domain="tiny", family="tiny", lineage={"transform": "test"}, discriminator=discriminator)
    return path, sha256, generator, discriminator


def test_round_trip_reproduces_outputs_and_metadata(saved, tiny_config):
    path, sha256, generator, discriminator = saved
    assert sha256 == sha256_file(path)
    model = load_model(path, expected_sha256=sha256, with_discriminator=True)
    z = torch.randn(4, tiny_config.style_dim)
    with torch.no_grad():
        assert torch.equal(model.generator(z, truncation=0.7)[0], generator(z, truncation=0.7)[0])
        image = generator(z)[0]
        assert torch.equal(model.discriminator(image), discriminator(image))
    assert torch.equal(model.generator.latent_avg, generator.latent_avg)
    info = model.info
    assert (info.domain, info.family, info.lineage, info.config) == ("tiny", "tiny", {"transform": "test"}, tiny_config)
    assert info.mapping_sha256 == mapping_sha256(generator.state_dict())
    assert info.generator_parameters == sum(p.numel() for p in generator.parameters()) + sum(
        b.numel() for b in generator.buffers() if b is not generator.latent_avg
    )
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())


def test_metadata_is_strings_with_json_config(saved):
    path = saved[0]
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "pt"
    assert json.loads(metadata["zoo.config"])["channels"] == {"4": 16, "8": 12, "16": 8}
    assert metadata["zoo.format_version"] == "1"
    assert metadata["modelspec.resolution"] == "16x16"


def test_mapping_hash_changes_only_with_the_mapping(tiny_config):
    torch.manual_seed(0)
    state = Generator(tiny_config).state_dict()
    original = mapping_sha256(state)
    state["conv1.conv.weight"] += 1
    assert mapping_sha256(state) == original
    state["style.1.bias"] += 1e-6
    assert mapping_sha256(state) != original


@pytest.mark.parametrize("cut", [10, 500, -100])
def test_truncated_file_is_a_one_line_error(saved, cut):
    path = saved[0]
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(ZooError, match=str(path)) as error:
        load_model(path)
    assert "\n" not in str(error.value)


def test_garbage_and_missing_files(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(ZooError, match="garbage.safetensors: not a readable safetensors"):
        read_info(garbage)
    with pytest.raises(ZooError, match="no such file"):
        read_info(tmp_path / "absent.safetensors")


def test_foreign_safetensors_without_zoo_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(ZooError, match="zoo import"):
        read_info(path)


def test_config_that_does_not_match_the_tensors(saved, tmp_path):
    path = saved[0]
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    config = json.loads(metadata["zoo.config"])
    config["channels"]["8"] = 24
    metadata["zoo.config"] = json.dumps(config)
    edited = tmp_path / "edited.safetensors"
    save_file(load_file(str(path)), str(edited), metadata=metadata)
    with pytest.raises(ZooError, match=r"edited.safetensors: tensors do not match the stored config: tensor \S+ has shape \[12, 8, 3, 3\] but the config needs \[24, 8, 3, 3\]"):
        read_info(edited)


def test_sha256_mismatch_is_refused(saved):
    path, sha256, *_ = saved
    with pytest.raises(ZooError, match="does not match registry.toml"):
        load_model(path, expected_sha256="0" * 64)


def test_asking_for_a_missing_discriminator(tmp_path, tiny_config):
    path = tmp_path / "g_only.safetensors"
    save_model(path, Generator(tiny_config), domain="g-only", family="g-only", lineage={})
    assert not read_info(path).has_discriminator
    with pytest.raises(ZooError, match="no discriminator"):
        load_model(path, with_discriminator=True)
