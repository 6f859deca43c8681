"""`zoo pull`: download over HTTP (a local server here), sha256 verification, mirrors, local copies, no half files."""

import functools
import http.server
import threading

import pytest
from conftest import ROSINALITY

from zoo import hookimpl, plugins
from zoo.domains import DataSource, DomainSpec, Recipe, Weights
from zoo.errors import ZooError
from zoo.files import sha256_file
from zoo.hub import pull
from zoo.registry import Registry, load

FIXTURE = ROSINALITY / "rosinality_small.pt"
FIXTURE_SHA256 = sha256_file(FIXTURE)


@pytest.fixture
def server():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ROSINALITY))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def published(server):
    """Registers domain `remote` whose weights are served by the local server; yields a function to set them."""
    declared = {}

    class Remote:
        @staticmethod
        @hookimpl
        def register_domains(register):
            register(DomainSpec(name="remote", family="remote", description="served locally", resolution=32,
                                data=DataSource(description="none", license="none"),
                                recipe=Recipe(base=None, iters=10), weights=declared["weights"]))

    def publish(*urls, sha256=FIXTURE_SHA256):
        declared["weights"] = Weights(urls=urls, format="rosinality-train", license="test", sha256=sha256)

    plugins.load_plugins()
    plugins.pm.register(Remote, name="remote-plugin")
    yield publish
    plugins.pm.unregister(name="remote-plugin")


def test_pull_downloads_verifies_imports_and_registers(server, published, zoo_home):
    published(f"{server}/rosinality_small.pt")
    sizes = []
    entry = pull("remote", on_start=sizes.append, on_chunk=lambda n: None)
    assert sizes == [FIXTURE.stat().st_size]
    assert entry["lineage"]["source"] == f"{server}/rosinality_small.pt"
    assert entry["lineage"]["source_sha256"] == FIXTURE_SHA256
    assert load("remote").info.config.size == 32
    assert not any((zoo_home / "downloads").iterdir())
    with pytest.raises(ZooError, match="model 'remote' already exists; pass --force"):
        pull("remote")


def test_hash_mismatch_leaves_nothing(server, published, zoo_home):
    published(f"{server}/rosinality_small.pt", sha256="0" * 64)
    with pytest.raises(ZooError, match="expected 0000000000000000.*zoo import PATH --name remote --family remote"):
        pull("remote")
    assert Registry().get("remote") is None
    assert not (zoo_home / "checkpoints").exists() or not any((zoo_home / "checkpoints").iterdir())
    assert not any((zoo_home / "downloads").iterdir())


def test_dead_mirror_falls_through_to_the_next(server, published):
    published(f"{server}/missing.pt", f"{server}/rosinality_small.pt")
    assert pull("remote")["lineage"]["source"].endswith("/rosinality_small.pt")


def test_all_mirrors_dead_names_each_url_and_the_alternatives(server, published):
    published(f"{server}/missing.pt")
    with pytest.raises(ZooError, match=r"missing.pt .*zoo pull remote --file PATH.*zoo import PATH --name remote --family remote"):
        pull("remote")


def test_corrupt_mirror_falls_through_to_the_next(server, published):
    published(f"{server}/reference_small.pt", f"{server}/rosinality_small.pt")
    assert pull("remote")["lineage"]["source"].endswith("/rosinality_small.pt")


def test_local_copy_is_verified(published, tmp_path):
    published("http://127.0.0.1:9/never-used.pt")
    with pytest.raises(ZooError, match="missing.pt: no such file; give the path of the downloaded http://127.0.0.1:9/never-used.pt"):
        pull("remote", file=tmp_path / "missing.pt")
    wrong = tmp_path / "wrong.pt"
    wrong.write_bytes(b"not the file")
    with pytest.raises(ZooError, match="wrong.pt: sha256"):
        pull("remote", file=wrong)
    assert pull("remote", file=FIXTURE)["lineage"]["source"] == str(FIXTURE)
