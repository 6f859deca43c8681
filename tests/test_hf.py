"""`zoo push` / `zoo pull hf://`: through huggingface_hub against a local stand-in for the Hub (tests/hf_stand_in.py),
never the network: round trip with a model card, revisions, the cache offline, a resumed download, sha256 and family
refusals, a plugin's hf:// weights."""

import hashlib

import huggingface_hub
import pytest
import torch
from conftest import ROSINALITY, perturbed
from hf_stand_in import Repo, StandInHub
from huggingface_hub.repocard import metadata_load
from PIL import Image
from test_cli import assert_user_error, zoo

from zoo import hookimpl, import_checkpoint, install_model, plugins
from zoo.checkpoint import read_info
from zoo.domains import DataSource, DomainSpec, Recipe, Weights
from zoo.errors import ZooError
from zoo.hf import model_card, pull_from_hub, push
from zoo.hub import pull
from zoo.registry import Registry, load


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The stand-in Hub as HF_ENDPOINT, with an empty Hugging Face cache."""
    monkeypatch.setenv("HF_ENDPOINT", "")
    with StandInHub() as stand_in:
        monkeypatch.setenv("HF_ENDPOINT", stand_in.endpoint)
        monkeypatch.setenv("HF_TOKEN", "zoo-test-token")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("ZOO_OFFLINE", raising=False)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        yield stand_in


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """Switches to a second, empty zoo home (another machine); returns a function doing it."""
    return lambda: monkeypatch.setenv("ZOO_HOME", str(tmp_path / "elsewhere"))


def tensors(name):
    model = load(name, with_discriminator=read_info(Registry().checkpoint_path(Registry().get(name))).has_discriminator)
    state = {f"g.{key}": value for key, value in model.generator.state_dict().items()}
    state["latent_avg"] = model.generator.truncation_center()
    if model.discriminator is not None:
        state.update({f"d.{key}": value for key, value in model.discriminator.state_dict().items()})
    return state


def test_push_then_pull_round_trips_bit_identically_with_a_model_card(family, hub, elsewhere, zoo_home):
    entry = Registry().get("tiny-b")
    pushed_bytes = (zoo_home / entry.file).read_bytes()
    original = tensors("tiny-b")
    commit = push("tiny-b", "alice/tiny-b", private=True)
    repo = hub.repos["alice/tiny-b"]
    assert repo.private and repo.commits[-1][0] == commit
    files = repo.commits[-1][1]
    assert sorted(files) == ["README.md", "samples.png", "tiny-b.safetensors"]
    assert files["tiny-b.safetensors"] == pushed_bytes
    card = files["README.md"].decode()
    assert card.startswith("---\n") and "![16 samples, seed 0, truncation 0.7](samples.png)" in card
    assert "zoo pull hf://alice/tiny-b" in card and "| base | `tiny` |" in card
    grid = Image.open(__import__("io").BytesIO(files["samples.png"]))
    assert grid.format == "PNG" and grid.size == (414, 414)  # 4x4 samples of 32 px, padding 2, enlarged 3x

    elsewhere()
    import_checkpoint(ROSINALITY / "rosinality_small.pt", "tiny")  # the family's base, as the user has it
    installed = pull_from_hub("hf://alice/tiny-b")
    assert installed.name == "tiny-b" and installed.family == "tiny"
    assert installed.lineage["source"] == f"hf://alice/tiny-b/tiny-b.safetensors@{commit}"
    assert installed.lineage["source_sha256"] == entry.sha256 == hashlib.sha256(pushed_bytes).hexdigest()
    pulled = tensors("tiny-b")
    assert pulled.keys() == original.keys()
    assert all(torch.equal(pulled[key], original[key]) for key in original)
    with pytest.raises(ZooError, match="model 'tiny-b' already exists; pass --force"):
        pull_from_hub("hf://alice/tiny-b")


def test_the_card_carries_the_hubs_metadata_and_zoos(family, tmp_path):
    entry = Registry().get("tiny-b")
    card = tmp_path / "README.md"
    card.write_text(model_card(entry, "alice/tiny-b"))
    metadata = metadata_load(card)
    assert metadata["library_name"] == "zoo" and metadata["license"] == "other"  # no licence recorded: "other"
    assert {"zoo", "stylegan2", "family-tiny"} <= set(metadata["tags"])
    assert metadata["zoo"] | {"zoo_version": None} == {
        "format": "zoo-safetensors", "file": "tiny-b.safetensors", "sha256": entry.sha256, "domain": "tiny-b",
        "family": "tiny", "base": "tiny", "resolution": 32, "mapping_sha256": entry.mapping_sha256, "zoo_version": None,
    }  # fmt: skip


def test_revisions_pin_what_is_pulled(family, hub, elsewhere):
    first = push("tiny-b", "alice/tiny")
    second = push("tiny-c", "alice/tiny")
    assert first != second
    elsewhere()
    assert pull_from_hub(f"hf://alice/tiny@{first}").name == "tiny-b"
    assert pull_from_hub("hf://alice/tiny").lineage["source"] == f"hf://alice/tiny/tiny-c.safetensors@{second}"
    with pytest.raises(ZooError, match=r"^hf://alice/tiny: no revision 'v9'; nothing was installed$"):
        pull_from_hub("hf://alice/tiny@v9")
    with pytest.raises(ZooError, match=r"^hf://alice/nothing: no such repository"):
        pull_from_hub("hf://alice/nothing")


def test_offline_pulls_come_from_the_cache(family, hub, elsewhere, monkeypatch):
    push("tiny-b", "alice/tiny-b")
    elsewhere()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ZooError, match=r"README.md is not in the Hugging Face cache and the Hub is offline"):
        pull_from_hub("hf://alice/tiny-b")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    pull_from_hub("hf://alice/tiny-b")
    Registry().remove("tiny-b")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(hub.requests)
    assert pull_from_hub("hf://alice/tiny-b").name == "tiny-b"
    assert len(hub.requests) == asked


def test_a_dropped_download_resumes_where_it_stopped(family, hub, elsewhere, monkeypatch):
    push("tiny-b", "alice/tiny-b")
    original = tensors("tiny-b")
    elsewhere()
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 16384)  # as a file of many 10 MB chunks is read
    hub.cut_next_download = 100_000
    pull_from_hub("hf://alice/tiny-b")
    ranges = [headers.get("Range") for method, path, headers in hub.requests if method == "GET" and path.startswith("/cdn/")]
    assert ranges == [None, f"bytes={6 * 16384}-"]  # the six whole chunks received before the cut are kept
    assert all(torch.equal(value, original[key]) for key, value in tensors("tiny-b").items())


def test_a_wrong_sha256_installs_nothing(family, hub, elsewhere, zoo_home):
    push("tiny-b", "alice/tiny-b")
    hub.commit("alice/tiny-b", {"tiny-b.safetensors": (zoo_home / "checkpoints/tiny-c.safetensors").read_bytes()})
    elsewhere()
    with pytest.raises(ZooError, match=r"^hf://alice/tiny-b/tiny-b.safetensors@[0-9a-f]{40}: sha256 .* is not the expected"):
        pull_from_hub("hf://alice/tiny-b")
    with pytest.raises(ZooError, match=r"^--sha256 0000000000000000… differs from the .* that hf://alice/tiny-b's README.md names"):
        pull_from_hub("hf://alice/tiny-b", sha256="0" * 64)
    assert Registry().domains() == {}


def test_another_family_is_refused_before_downloading(family, hub, elsewhere):
    push("tiny-b", "alice/tiny-b")
    elsewhere()
    install_model("tiny", perturbed(family, 0.05, 9, mapping_too=True), family="tiny", lineage={})
    hub.requests.clear()
    with pytest.raises(ZooError, match=r"^hf://alice/tiny-b: its mapping network .* is not that of family 'tiny' installed here "
                                       r"\(tiny: .*\), so it is another family; nothing was downloaded$"):
        pull_from_hub("hf://alice/tiny-b")
    assert [path for method, path, _ in hub.requests if "safetensors" in path or "/cdn/" in path] == []
    assert sorted(Registry().domains()) == ["tiny"]


def test_a_reference_may_name_any_file_given_its_sha256(family, hub, elsewhere):
    repo = "bob/rosinality"
    hub.repos[repo] = Repo(private=False)
    hub.commit(repo, {"weights/small.pt": (ROSINALITY / "rosinality_small.pt").read_bytes()})
    elsewhere()
    with pytest.raises(ZooError, match=r"^hf://bob/rosinality/weights/small.pt: names a file, so no zoo card pins it; pass its hash"):
        pull_from_hub("hf://bob/rosinality/weights/small.pt")
    sha256 = hashlib.sha256((ROSINALITY / "rosinality_small.pt").read_bytes()).hexdigest()
    entry = pull_from_hub("hf://bob/rosinality/weights/small.pt@main", sha256=sha256)
    assert entry.name == "small" and entry.family == "small" and entry.lineage["source_format"] == "rosinality-train"


def test_an_unreachable_hub_is_one_line(family, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ZooError, match=r"^hf://alice/tiny-b: the upload failed \(.*\); check HF_TOKEN"):
        push("tiny-b", "alice/tiny-b")
    # (a pull says "README.md is not in the Hugging Face cache and the Hub cannot be reached", after the client's
    # own retries: about 30 s, too long for this suite)


def test_a_plugins_weights_may_live_on_the_hub(family, hub, elsewhere):
    push("tiny-b", "alice/tiny-b")
    sha256 = Registry().get("tiny-b").sha256

    class Published:
        @staticmethod
        @hookimpl
        def register_domains(register):
            register(DomainSpec(name="tiny-b", family="tiny", description="on the Hub", resolution=32,
                                data=DataSource(description="none", license="none"), recipe=Recipe(base="tiny", iters=10),
                                weights=Weights(urls=("hf://alice/missing", "hf://alice/tiny-b/tiny-b.safetensors@main"),
                                                format="zoo-safetensors", license="MIT", sha256=sha256)))  # fmt: skip

    elsewhere()
    plugins.load_plugins()
    plugins.pm.register(Published, name="published")
    try:
        entry = pull("tiny-b")
    finally:
        plugins.pm.unregister(name="published")
    assert entry.lineage["source"].startswith("hf://alice/tiny-b/tiny-b.safetensors@") and entry.sha256


def test_cli_push_and_pull_refusals_are_one_line(family, hub, tmp_path):
    """Three real `zoo` processes, which read HF_ENDPOINT and HF_HOME as a user's shell sets them."""
    pushed = zoo("push", "tiny-b", "alice/cli")
    assert "pushed tiny-b to hf://alice/cli@" in pushed.stdout
    env = {"ZOO_HOME": str(tmp_path / "elsewhere"), "HF_HOME": str(tmp_path / "hf-home")}
    assert_user_error(zoo("pull", "hf://alice/cli", "--sha256", "1" * 64, check=False, **env), "differs from the")
    installed = zoo("pull", "hf://alice/cli", "--as", "copy", **env)
    assert "installed copy from hf://alice/cli/tiny-b.safetensors@" in installed.stdout
    with pytest.raises(ZooError, match="not a Hub repository id"):
        push("tiny-b", "not a repo")
