"""`zoo serve` on the shipped emoji zoo: the checks on a request (in process), 20 concurrent uploads against a running
server (answered or politely refused, memory bounded, the server still up), and the page in a real browser (headless
Debian chromium driven by Playwright): upload an emoji, translate to all styles, download one result."""

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_cli import assert_user_error, zoo

pytest.importorskip("starlette", reason="zoo serve needs the serve extra: pip install 'zoo-stylegan[serve]'")

from zoo.errors import ZooError  # noqa: E402
from zoo.images import PROVENANCE_KEY  # noqa: E402
from zoo.inversion import InversionSettings  # noqa: E402
from zoo.registry import Registry  # noqa: E402
from zoo.serve.app import MAX_BODY_BYTES  # noqa: E402
from zoo.serve.studio import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, Studio, Upload, decode_upload  # noqa: E402

ROOT = Path(__file__).parents[1]
NOTO = ROOT / "plugins" / "zoo_plugins" / "emoji" / "data" / "noto"
STYLES = ["emoji-fluent-3d", "emoji-fluent-color", "emoji-fluent-flat", "emoji-openmoji", "emoji-twemoji"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def shipped_home(tmp_path_factory):
    """A zoo home holding a copy of the shipped emoji zoo (registry.toml and checkpoints/, 44 MB)."""
    home = tmp_path_factory.mktemp("shipped-zoo")
    shutil.copy(ROOT / "registry.toml", home / "registry.toml")
    shutil.copytree(ROOT / "checkpoints", home / "checkpoints")
    return home


@pytest.fixture
def studio(shipped_home, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(shipped_home))
    return Studio()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------------------
# A request's checks, in process


def test_catalog_offers_the_family_with_the_base_first_and_held_out_examples(studio):
    catalog = studio.catalog()
    assert list(catalog["sources"])[0] == "emoji-noto"
    noto = catalog["sources"]["emoji-noto"]
    assert noto["targets"] == STYLES  # the -ft ablations have mapping networks of their own, so they are not offered
    assert len(noto["examples"]) == 12 and all((NOTO / name).is_file() for name in noto["examples"])


def test_uploads_are_decoded_with_the_cli_checks_and_errors_name_the_upload(studio):
    image = decode_upload(Upload("smile.png", (NOTO / "1F603.png").read_bytes()), 32)
    assert image.shape == (1, 3, 32, 32) and -1 <= image.min() < image.max() <= 1
    for upload, expected in [
        (Upload("notes.txt", b"not an image at all"), "notes.txt: not an image Pillow can identify"),
        (Upload("cut.png", (NOTO / "1F603.png").read_bytes()[:200]), "cut.png: unreadable or truncated"),
        (Upload("empty.png", b""), "empty.png: empty file"),
        (Upload("huge.png", b"\0" * (MAX_UPLOAD_BYTES + 1)), "huge.png: 8.0 MiB; uploads are limited to 8 MiB"),
        (Upload("wide.png", png(Image.new("1", (MAX_UPLOAD_PIXELS // 1000 + 1, 1000)))), "wide.png: 16778x1000 px"),
    ]:
        with pytest.raises(ZooError, match="^" + expected) as caught:
            decode_upload(upload, 32)
        assert "zoo-serve-" not in str(caught.value) and "\n" not in str(caught.value)  # no temp path, one line


def test_an_order_is_checked_before_it_waits_for_a_model(studio):
    example = studio.catalog()["sources"]["emoji-noto"]["examples"][0]
    order = studio.check_order("emoji-noto", ["emoji-twemoji"], None, example, swap=1, styles=2)
    assert order.models == ["emoji-noto", "emoji-twemoji"] and order.image.shape == (1, 3, 32, 32)
    reference = Upload("ref.png", (NOTO / "1F603.png").read_bytes())
    for arguments, expected in [
        ((["emoji-twemoji-ft"], None, example), "emoji-twemoji-ft: not in emoji-noto's family"),
        (([], None, example), "choose at least one target"),
        ((["emoji-twemoji"], None, "../../registry.toml"), "not one of emoji-noto's examples"),
        ((["emoji-twemoji"], None, None), "upload an image or pick an example"),
    ]:
        with pytest.raises(ZooError, match=expected):
            studio.check_order("emoji-noto", *arguments)
    with pytest.raises(ZooError, match="appearance codes: 9; choose 0 to 8"):
        studio.check_order("emoji-noto", ["emoji-twemoji"], None, example, styles=9)
    with pytest.raises(ZooError, match="--swap 3 would swap every layer of a 32px model"):
        studio.check_order("emoji-noto", ["emoji-twemoji"], None, example, swap=3)
    with pytest.raises(ZooError, match="choose a single target"):
        studio.check_order("emoji-noto", STYLES[:2], None, example, reference=reference)


def translate_santa(studio: Studio):
    """The noto Santa into twemoji at swap 1 with two appearance codes and a twemoji smiley as the reference."""
    reference = Upload("ref.png", (NOTO.parent / "twemoji" / "1F603.png").read_bytes())
    order = studio.check_order("emoji-noto", ["emoji-twemoji"], Upload("1F385-1F3FB.png", (NOTO / "1F385-1F3FB.png").read_bytes()),
                               None, swap=1, styles=2, reference=reference)  # fmt: skip
    return studio.translate(order)


@pytest.mark.parametrize("inversion", [None, InversionSettings(steps=20)], ids=["recipe-distilled", "bounded"])
def test_a_translation_has_each_output_with_its_provenance_and_the_true_counterpart(shipped_home, monkeypatch, inversion):
    monkeypatch.setenv("ZOO_HOME", str(shipped_home))
    result = translate_santa(Studio(inversion))  # None: the emoji recipe's method; bounded: a short inversion
    outputs = result.outputs["emoji-twemoji"]
    assert [picture.file for picture in outputs] == [f"1F385-1F3FB-emoji-noto-to-emoji-twemoji{suffix}.png"
                                                     for suffix in ("", "-style1", "-style2", "-ref")]  # fmt: skip
    images = [np.asarray(Image.open(io.BytesIO(picture.png))) for picture in outputs]
    assert all(image.shape == (32, 32, 3) for image in images)
    assert all(np.abs(images[0].astype(int) - other).mean() > 1 for other in images[1:])  # each appearance changes it
    provenance = [json.loads(Image.open(io.BytesIO(picture.png)).text[PROVENANCE_KEY]) for picture in outputs]
    assert {entry["swap"] for entry in provenance} == {1} and provenance[3]["reference"] is True
    assert provenance[0]["target_sha256"] == Registry().get("emoji-twemoji").sha256
    assert result.truths["emoji-twemoji"].file == "1F385-1F3FB-emoji-twemoji-truth.png"
    if inversion is None:  # one pass of the family's translator: nothing inverted, so no reconstruction
        assert result.method == "distilled" and result.reconstruction is None and len(result.pictures()) == 6
        assert {(entry["method"], entry["translator"]) for entry in provenance} == {("distilled", "emoji-noto-translator")}
    else:
        assert result.method == "bounded" and result.reconstruction.file == "1F385-1F3FB-emoji-noto-reconstruction.png"
        assert len(result.pictures()) == 7 and {entry["method"] for entry in provenance} == {"bounded"}


# ---------------------------------------------------------------------------------------------------------------------
# A running server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(home: Path, command: list[str], port: int) -> tuple[subprocess.Popen, str]:
    """Run `command` (a server listening on `port`) with `home` as its zoo, its output in a file (a pipe nobody reads
    could fill and stall it); wait until it answers. Stop it with `stop_server`, which returns that output."""
    env = {**os.environ, "ZOO_HOME": str(home), "OMP_NUM_THREADS": "2",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    log = home / f"server-{port}.log"
    with log.open("w") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    server.log = log
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(url + "/api/catalog", timeout=30).read()
            return server, url
        except OSError:  # not listening yet (URLError, a reset or a timeout are all OSErrors)
            time.sleep(0.3)
    raise AssertionError(f"the server did not answer within 60 s: {stop_server(server)}")


def stop_server(server: subprocess.Popen) -> str:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    return server.log.read_text()


def memory_kib(pid: int) -> dict[str, int]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), in KiB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) for key in ("VmRSS", "VmHWM")}


def post(url: str, body: dict | bytes, timeout: float = 300) -> tuple[int, list[dict]]:
    """POST JSON (or raw bytes); the status and the answer's JSON lines (one object for an error)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, [json.loads(line) for line in response.read().splitlines() if line.strip()]
    except urllib.error.HTTPError as error:
        return error.code, [json.loads(error.read())]


def test_an_address_in_use_is_one_line_naming_it(zoo_home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_user_error(zoo("serve", "--port", port, check=False), f"127.0.0.1:{port}: cannot listen there", "--port")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="measures memory through /proc (Linux)")
def test_twenty_concurrent_uploads_are_answered_or_politely_refused_with_memory_bounded(shipped_home):
    """Each upload is a 6.4 MB noise PNG (an 8.6 MB request). The queue admits 6 at a time and refuses the rest with
    429; an admitted request keeps only its 32 px input once decoded, so the server grows by less than holding the
    20 requests and their pixels at once would take (measured: 177 MB of growth against that bound's 300 MB; with the
    queue unbounded, 241 MB)."""
    port = free_port()
    script = ("import sys; from zoo.inversion import InversionSettings; from zoo.serve.app import serve; "
              "from zoo.serve.studio import Studio; serve('127.0.0.1', int(sys.argv[1]), Studio(InversionSettings(method='encoder')))")  # fmt: skip
    server, url = start_server(shipped_home, [sys.executable, "-c", script, str(port)], port)
    try:
        noise = np.random.default_rng(0).integers(0, 256, (1460, 1460, 3), dtype=np.uint8)
        upload = {"name": "noise.png", "data": base64.b64encode(png(Image.fromarray(noise))).decode()}
        body = {"source": "emoji-noto", "targets": ["emoji-twemoji"], "image": upload}
        held_all_at_once = 20 * (len(json.dumps(body)) + noise.nbytes)
        assert post(url + "/api/translate", body)[1][-1]["stage"] == "done"  # warm: models loaded, allocator settled
        before = memory_kib(server.pid)["VmRSS"]
        answers = [None] * 20

        def send(index):
            answers[index] = post(url + "/api/translate", body)

        threads = [threading.Thread(target=send, args=(index,)) for index in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        statuses = [status for status, _ in answers]
        assert set(statuses) <= {200, 429, 503}, statuses
        assert 1 <= statuses.count(200) <= 20 and statuses.count(429) >= 1, statuses
        for status, events in answers:
            final = events[-1]
            assert final["stage"] == "done" if status == 200 else final["error"].startswith("busy:")
        peak = memory_kib(server.pid)["VmHWM"]
        print(f"20 concurrent uploads: {statuses.count(200)} answered, {statuses.count(429)} refused; "
              f"resident memory {before / 1024:.0f} MB before, peak {peak / 1024:.0f} MB")
        assert (peak - before) * 1024 < held_all_at_once, f"grew by {(peak - before) / 1024:.0f} MB"
        with urllib.request.urlopen(url + "/api/catalog", timeout=10) as response:  # still up and answering
            assert response.status == 200 and server.poll() is None
        assert post(url + "/api/translate", b"{not json") == (400, [{"error": "the request is not JSON; send it from the page"}])
        status, [answer] = post(url + "/api/translate", b" " * (MAX_BODY_BYTES + 1))
        assert status == 413 and answer["error"].endswith("uploads are limited to 8 MiB an image")
    finally:
        log = stop_server(server)
    assert "Traceback" not in log, log


# ---------------------------------------------------------------------------------------------------------------------
# The page in a real browser


def browser():
    """Playwright's Chromium pointed at Debian's executable (browser downloads are not possible here)."""
    playwright = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install playwright)")
    if CHROMIUM is None:
        pytest.skip("the browser test needs Debian's chromium: apt-get install chromium (.ci/run installs it)")
    return playwright.sync_playwright()


DROP = """([name, bytes]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([new Uint8Array(bytes)], name, { type: "image/png" }));
  document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
}"""


def test_the_page_translates_an_uploaded_emoji_into_every_style_and_downloads_a_png(shipped_home):
    with browser() as playwright:
        port = free_port()
        server, url = start_server(shipped_home, [sys.executable, "-m", "zoo", "serve", "--port", str(port)], port)
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
            page = chromium.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page.goto(url)
            page.wait_for_selector("#examples img")
            assert page.input_value("#source") == "emoji-noto"

            page.click("#examples img >> nth=2")  # an example is chosen by a click ...
            assert page.inner_text("#drop-text") == page.get_attribute("#examples img >> nth=2", "alt")
            page.evaluate(DROP, ["notes.png", list(b"not an image")])  # ... a file by dragging it onto the box
            assert page.inner_text("#drop-text") == "notes.png"
            page.click("#all-targets")
            page.click("#translate")
            page.wait_for_selector("#error:not([hidden])")
            assert page.inner_text("#error") == "notes.png: not an image Pillow can identify"

            example = page.get_attribute("#examples img", "alt")
            page.set_input_files("#file", str(NOTO / example))
            page.fill("#styles", "1")
            started = time.perf_counter()
            page.click("#translate")
            page.wait_for_selector("#progress:not([hidden])")
            page.wait_for_selector("figure.output", timeout=240_000)
            seconds = time.perf_counter() - started
            assert page.is_hidden("#error")
            assert page.locator("figure.output img").count() == len(STYLES) * 2  # each style: translation + 1 appearance code
            assert page.locator("figure.truth img").count() == len(STYLES)  # the uploaded emoji as each style draws it
            page.wait_for_function("[...document.querySelectorAll('#rows img')].every(i => i.complete && i.naturalWidth === 32)")
            with page.expect_download() as download:
                page.click("figure.output a.download >> nth=0")
            saved = Path(download.value.path()).read_bytes()
            assert saved[:8] == PNG_SIGNATURE and download.value.suggested_filename == f"{Path(example).stem}-emoji-noto-to-{STYLES[0]}.png"
            provenance = json.loads(Image.open(io.BytesIO(saved)).text[PROVENANCE_KEY])
            assert provenance["source"] == "emoji-noto" and provenance["target"] == STYLES[0] and provenance["input"] == example
            with urllib.request.urlopen(url + page.get_attribute("#zip", "href")) as response:
                files = zipfile.ZipFile(io.BytesIO(response.read())).namelist()
            assert len(files) == 1 + len(STYLES) * 3  # the input (the distilled recipe: no reconstruction); per style two outputs and the truth
            assert page.locator("figure.reconstruction").count() == 0 and "method: distilled" in page.inner_text("#timing")
            if os.environ.get("ZOO_SERVE_SCREENSHOT"):  # how docs/serve.png is made
                page.click("#distances summary")
                page.wait_for_selector("#distances table", timeout=120_000)
                page.screenshot(path=os.environ["ZOO_SERVE_SCREENSHOT"], full_page=True)
            print(f"first translation in the page: {seconds:.1f} s")
            chromium.close()
        finally:
            log = stop_server(server)
    assert "Traceback" not in log, log
