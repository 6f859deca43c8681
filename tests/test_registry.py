"""registry.toml: install, overwrite protection, families, concurrency and name resolution."""

import multiprocessing
import tomllib

import pytest
import torch

from zoo.errors import ZooError
from zoo.home import recorded_path
from zoo.model import Generator, ModelConfig
from zoo.registry import Registry, check_name, install_model, load, resolve

CONFIG = dict(size=8, style_dim=8, n_mlp=1, channels={4: 8, 8: 8})


def make_generator(seed):
    torch.manual_seed(seed)
    return Generator(ModelConfig(**CONFIG))


def test_install_records_entry_and_load_verifies(zoo_home):
    entry = install_model("alpha", make_generator(0), family="alpha", lineage={"transform": "test"})
    stored = tomllib.loads((zoo_home / "registry.toml").read_text())["domains"]["alpha"]
    assert stored == entry.to_toml()
    assert entry["file"] == "checkpoints/alpha.safetensors"
    assert (entry["family"], entry["resolution"]) == ("alpha", 8)
    assert load("alpha").info.domain == "alpha"
    (zoo_home / "checkpoints" / "alpha.safetensors").write_bytes(b"tampered")
    with pytest.raises(ZooError, match="alpha.safetensors"):
        load("alpha")


def test_never_overwrites_without_force(zoo_home):
    install_model("alpha", make_generator(0), family="alpha", lineage={})
    before = (zoo_home / "checkpoints" / "alpha.safetensors").read_bytes()
    with pytest.raises(ZooError, match="already exists; pass --force"):
        install_model("alpha", make_generator(1), family="alpha", lineage={})
    assert (zoo_home / "checkpoints" / "alpha.safetensors").read_bytes() == before
    install_model("alpha", make_generator(1), family="other", lineage={}, force=True)
    assert Registry().get("alpha")["family"] == "other"


def test_family_is_defined_by_the_mapping_network():
    base = make_generator(0)
    install_model("base", base, family="fam", lineage={})
    sibling = make_generator(1)
    sibling.style.load_state_dict(base.style.state_dict())
    install_model("sibling", sibling, family="fam", lineage={})
    with pytest.raises(ZooError, match="cannot join family 'fam' \\(base, sibling\\)"):
        install_model("stranger", make_generator(2), family="fam", lineage={})
    assert set(Registry().domains()) == {"base", "sibling"}


def _install_in_child(name):
    install_model(name, make_generator(hash(name) % 100), family=name, lineage={})


def test_concurrent_installs_keep_every_entry():
    names = [f"model-{i}" for i in range(4)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_install_in_child, names)
    assert sorted(Registry().domains()) == names


@pytest.mark.parametrize("bad", ["../evil", "Upper", "a/b", "", "-lead", "under_score"])
def test_names_are_never_paths(bad):
    with pytest.raises(ZooError, match="invalid name"):
        check_name(bad)


def test_resolve_names_paths_and_unknowns(tmp_path):
    install_model("alpha", make_generator(0), family="alpha", lineage={})
    path, sha256 = resolve("alpha")
    assert path.name == "alpha.safetensors" and len(sha256) == 64
    assert resolve(path) == (path, None)
    with pytest.raises(ZooError, match="neither an installed model"):
        resolve("nothing-here")


def test_damaged_registry_is_a_clear_error(zoo_home):
    zoo_home.mkdir(parents=True)
    (zoo_home / "registry.toml").write_text("[domains\n")
    with pytest.raises(ZooError, match="registry.toml: not valid TOML"):
        Registry().domains()


def test_lineage_paths_inside_the_zoo_home_are_recorded_relative_to_it(zoo_home, tmp_path):
    assert recorded_path(zoo_home / "data" / "noto") == "data/noto"
    outside = tmp_path / "my-images"
    assert recorded_path(outside) == str(outside.resolve())


def test_load_is_the_one_door_by_name_or_path(model):
    """By name: sha256 checked and recorded; by path: none recorded; "auto" takes D exactly when the file has one."""
    entry = Registry().get("tiny")
    path = Registry().checkpoint_path(entry)
    assert model.sha256 == entry.sha256 and model.discriminator is None
    by_path = load(path, with_discriminator="auto")
    assert by_path.sha256 is None and (by_path.discriminator is not None) == by_path.info.has_discriminator
    assert torch.equal(by_path.generator.style[1].weight, model.generator.style[1].weight)
    without_d = install_model("no-d", model.generator, family="tiny", lineage={})
    assert load("no-d", with_discriminator="auto").discriminator is None
    with pytest.raises(ZooError, match="holds no discriminator"):
        load(without_d.name, with_discriminator=True)
