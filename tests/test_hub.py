"""`zoo pull`: download (file: URLs under the test-only ZOO_TEST_FILE_URLS=1; plain http refused), sha256 and format
verification, unpinned weights, mirrors, local copies, no half files."""

import functools
import http.server
import threading
import urllib.request

import pytest
from conftest import ROSINALITY

from zoo import hookimpl, hub, plugins
from zoo.domains import DataSource, DomainSpec, Recipe, Weights
from zoo.errors import ZooError
from zoo.files import sha256_file
from zoo.hub import pull
from zoo.registry import Registry, load

FIXTURE = ROSINALITY / "rosinality_small.pt"
FIXTURE_SHA256 = sha256_file(FIXTURE)


@pytest.fixture
def files(monkeypatch):
    """The base URL of the fixtures as file: URLs, which pull accepts only under ZOO_TEST_FILE_URLS=1."""
    monkeypatch.setenv("ZOO_TEST_FILE_URLS", "1")
    return ROSINALITY.as_uri()


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
def published():
    """Registers domain `remote` whose weights are served by the local server; yields a function to set them."""
    declared = {}

    class Remote:
        @staticmethod
        @hookimpl
        def register_domains(register):
            register(DomainSpec(name="remote", family="remote", description="served locally", resolution=32,
                                data=DataSource(description="none", license="none"),
                                recipe=Recipe(base=None, iters=10), weights=declared["weights"]))

    def publish(*urls, sha256=FIXTURE_SHA256, format="rosinality-train"):
        declared["weights"] = Weights(urls=urls, format=format, license="test", sha256=sha256)

    plugins.load_plugins()
    plugins.pm.register(Remote, name="remote-plugin")
    yield publish
    plugins.pm.unregister(name="remote-plugin")


def test_pull_downloads_verifies_imports_and_registers(files, published, zoo_home):
    published(f"{files}/rosinality_small.pt")
    sizes = []
    entry = pull("remote", on_start=sizes.append, on_chunk=lambda n: None)
    assert sizes == [FIXTURE.stat().st_size]
    assert entry["lineage"]["source"] == f"{files}/rosinality_small.pt"
    assert entry["lineage"]["source_sha256"] == FIXTURE_SHA256
    assert load("remote").info.config.size == 32
    assert not any((zoo_home / "downloads").iterdir())
    with pytest.raises(ZooError, match="model 'remote' already exists; pass --force"):
        pull("remote")


def test_hash_mismatch_leaves_nothing(files, published, zoo_home):
    published(f"{files}/rosinality_small.pt", sha256="0" * 64)
    with pytest.raises(ZooError, match="expected 0000000000000000.*zoo import PATH --name remote --family remote"):
        pull("remote")
    assert Registry().get("remote") is None
    assert not (zoo_home / "checkpoints").exists() or not any((zoo_home / "checkpoints").iterdir())
    assert not any((zoo_home / "downloads").iterdir())


def test_dead_mirror_falls_through_to_the_next(files, published):
    published(f"{files}/missing.pt", f"{files}/rosinality_small.pt")
    assert pull("remote")["lineage"]["source"].endswith("/rosinality_small.pt")


def test_all_mirrors_dead_names_each_url_and_the_alternatives(files, published):
    published(f"{files}/missing.pt")
    with pytest.raises(ZooError, match=r"missing.pt .*zoo pull remote --file PATH.*zoo import PATH --name remote --family remote"):
        pull("remote")


def test_corrupt_mirror_falls_through_to_the_next(files, published):
    published(f"{files}/reference_small.pt", f"{files}/rosinality_small.pt")
    assert pull("remote")["lineage"]["source"].endswith("/rosinality_small.pt")


def test_local_copy_is_verified(published, tmp_path):
    published("https://127.0.0.1:9/never-used.pt")
    with pytest.raises(ZooError, match="missing.pt: no such file; give the path of the downloaded https://127.0.0.1:9/never-used.pt"):
        pull("remote", file=tmp_path / "missing.pt")
    wrong = tmp_path / "wrong.pt"
    wrong.write_bytes(b"not the file")
    with pytest.raises(ZooError, match="wrong.pt: sha256"):
        pull("remote", file=wrong)
    assert pull("remote", file=FIXTURE)["lineage"]["source"] == str(FIXTURE)


def test_plain_http_and_file_urls_without_the_test_switch_are_refused(server, published, monkeypatch, zoo_home):
    published(f"{server}/rosinality_small.pt")
    with pytest.raises(ZooError, match=r"^http://127\.0\.0\.1:\d+/rosinality_small\.pt: zoo downloads weights over https only"):
        pull("remote")
    monkeypatch.delenv("ZOO_TEST_FILE_URLS", raising=False)
    published(FIXTURE.as_uri())
    with pytest.raises(ZooError, match="over https only"):
        pull("remote")
    assert Registry().get("remote") is None and not (zoo_home / "downloads").exists()


def test_redirect_to_plain_http_is_refused():
    redirects = hub._HttpsOnlyRedirects()
    request = urllib.request.Request("https://example.org/weights.pkl")
    with pytest.raises(ZooError, match=r"^http://example\.org/weights\.pkl: zoo downloads weights over https only"):
        redirects.redirect_request(request, None, 302, "Found", {}, "http://example.org/weights.pkl")
    assert redirects.redirect_request(request, None, 302, "Found", {}, "https://mirror.example.org/w.pkl") is not None


def test_unpinned_weights_need_the_users_hash_or_an_opt_out(files, published):
    published(f"{files}/rosinality_small.pt", sha256=None)
    with pytest.raises(ZooError, match=r"declares no sha256 for .*rosinality_small\.pt.*--sha256 HEX.*--allow-unpinned"):
        pull("remote")
    with pytest.raises(ZooError, match="expected 0000000000000000"):
        pull("remote", sha256="0" * 64)
    assert pull("remote", sha256=FIXTURE_SHA256.upper())["sha256"]
    assert pull("remote", allow_unpinned=True, force=True)["lineage"]["source_sha256"] == FIXTURE_SHA256


def test_hashes_compare_case_insensitively_and_must_be_hex(files, published):
    published(f"{files}/rosinality_small.pt", sha256=FIXTURE_SHA256.upper())
    assert pull("remote")["lineage"]["source_sha256"] == FIXTURE_SHA256
    with pytest.raises(ZooError, match="differs from the"):
        pull("remote", sha256="1" * 64, force=True)
    published(f"{files}/rosinality_small.pt", sha256="xyz")
    with pytest.raises(ZooError, match="is not 64 hex digits"):
        pull("remote", force=True)


def test_a_file_in_another_format_than_declared_is_not_installed(files, published, zoo_home):
    published(f"{files}/rosinality_small.pt", format="nvidia-ada-pkl")
    with pytest.raises(ZooError, match="the file is rosinality-train, but remote's plugin declares nvidia-ada-pkl"):
        pull("remote")
    assert Registry().get("remote") is None


def test_built_in_published_weights_are_https():
    for spec in plugins.registered_domains().values():
        for url in spec.weights.urls if spec.weights else ():
            assert url.startswith("https://"), (spec.name, url)
