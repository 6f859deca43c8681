"""Published weights: `pull` downloads a domain's declared file (or takes a local copy), verifies its sha256 and its
format, imports it and registers it; `import_url` (`zoo import URL`) downloads any file the user names and imports
it. Downloads stream into a temporary file that is removed whatever happens.

Only https URLs are fetched (redirects included), and `hf://` references through the Hugging Face Hub's client
(zoo/hf.py); `file:` URLs only when ZOO_TEST_FILE_URLS=1, which exists for zoo's own tests. Weights without a declared sha256 are refused unless the user gives one (`sha256=`, `--sha256`) or
opts out (`allow_unpinned=True`, `--allow-unpinned`).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from .domains import get_domain
from .environment import offline
from .errors import ChecksumMismatch, ZooError
from .files import atomic_path, sha256_file
from .hf import fetch_verified, parse_ref
from .home import zoo_home
from .registry import Registry

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 30


def file_urls_allowed() -> bool:
    """Test-only: ZOO_TEST_FILE_URLS=1 lets a plugin declare file: URLs (zoo's tests serve weights from disk)."""
    return os.environ.get("ZOO_TEST_FILE_URLS", "") not in ("", "0")


def check_url(url: str) -> None:
    """Weights come over https only: plain http (or ftp, ...) lets anyone on the path swap the file."""
    if url.startswith("hf://"):
        return
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme != "https" and not (scheme == "file" and file_urls_allowed()):
        raise ZooError(f"{url}: zoo downloads weights over https only; the plugin declaring it must give an https URL")


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, request, fp, code, message, headers, new_url):
        check_url(new_url)
        return super().redirect_request(request, fp, code, message, headers, new_url)


_opener = urllib.request.build_opener(_HttpsOnlyRedirects)


def download(
    url: str,
    destination: Path,
    *,
    expected_sha256: str | None = None,
    on_start: Callable[[int | None], None] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> str:
    """Fetch `url` into `destination` atomically and return its sha256.

    Raises ConnectionError when the URL cannot be fetched and ChecksumMismatch when the content is wrong (callers
    can try a mirror after either); in both cases nothing is left at `destination`.
    """
    check_url(url)
    if offline():
        raise ConnectionError("ZOO_OFFLINE is set")
    digest = hashlib.sha256()
    try:
        with _opener.open(url, timeout=TIMEOUT_SECONDS) as response, atomic_path(destination) as tmp:
            length = response.headers.get("Content-Length")
            if on_start:
                on_start(int(length) if length else None)
            with open(tmp, "wb") as out:
                while chunk := response.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    if on_chunk:
                        on_chunk(len(chunk))
            if expected_sha256 and digest.hexdigest() != expected_sha256.lower():
                raise ChecksumMismatch(
                    f"{url}: downloaded file has sha256 {digest.hexdigest()[:16]}…, expected {expected_sha256[:16]}…; "
                    "the file changed upstream or the download was corrupted; nothing was installed"
                )
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        raise ConnectionError(str(getattr(error, "reason", error))) from None
    return digest.hexdigest()


def pull(
    name: str,
    *,
    file: Path | None = None,
    force: bool = False,
    sha256: str | None = None,
    allow_unpinned: bool = False,
    on_start: Callable[[int | None], None] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> dict:
    """Install domain `name` from its published weights (or from `file`, a local copy of them); returns the entry.

    The file must have the declared sha256 (or `sha256`, the user's own pin, when the plugin declares none; without
    either, pull refuses unless `allow_unpinned`) and be in the declared format, judged by content.
    """
    spec = get_domain(name)
    weights = spec.weights
    if weights is None:
        base = f" from {spec.recipe.base}" if spec.recipe.base else ""
        raise ZooError(f"domain {name!r} publishes no weights; train it{base} with `zoo add-domain {name} --data DIR`")
    expected = _expected_sha256(name, weights, sha256, allow_unpinned)
    for url in weights.urls:
        check_url(url)
    Registry().check_free(name, force)  # before a download that may take long
    alternative = f"`zoo import PATH --name {name} --family {spec.family}`"
    if file is not None:
        if not Path(file).is_file():
            raise ZooError(f"{file}: no such file; give the path of the downloaded {weights.urls[0]}")
        actual = sha256_file(file)
        if expected and actual != expected:
            raise ZooError(f"{file}: sha256 {actual[:16]}… is not the published {expected[:16]}…; wrong or damaged file")
        return _import_weights(file, spec, force, source=str(file))
    downloads = zoo_home() / "downloads"
    failures = []
    for url in weights.urls:
        if url.startswith("hf://"):
            try:
                local, source = fetch_verified(parse_ref(url), expected)
            except (ChecksumMismatch, ConnectionError) as error:
                failures.append(str(error))
                continue
            return _import_weights(local, spec, force, source=source)
        with tempfile.TemporaryDirectory(dir=_ensure(downloads)) as scratch:
            local = Path(scratch) / url.rsplit("/", 1)[-1]
            try:
                download(url, local, expected_sha256=expected, on_start=on_start, on_chunk=on_chunk)
            except ChecksumMismatch as error:
                failures.append(str(error))
                continue
            except ConnectionError as error:
                failures.append(f"{url} ({error})")
                continue
            return _import_weights(local, spec, force, source=url)
    raise ZooError(
        f"could not download {'; '.join(failures)}; fetch the file elsewhere and run `zoo pull {name} --file PATH` "
        f"(or {alternative})"
    )


def is_url(text: str) -> bool:
    return "://" in str(text)


def import_url(
    url: str,
    name: str,
    *,
    sha256: str | None = None,
    allow_unpinned: bool = False,
    force: bool = False,
    on_start: Callable[[int | None], None] | None = None,
    on_chunk: Callable[[int], None] | None = None,
    **import_options,
) -> dict:
    """Download `url` (https only; its content must have `sha256` unless `allow_unpinned`) and `import_checkpoint` it
    as `name` with `import_options`; returns the registry entry."""
    from .importers import import_checkpoint

    check_url(url)
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ZooError(f"--sha256 {sha256!r}: not 64 hex digits")
    if sha256 is None and not allow_unpinned:
        raise ZooError(f"{url}: pass the file's hash with --sha256 HEX so zoo can tell it from another file, or accept "
                       "whatever the URL serves with --allow-unpinned")  # fmt: skip
    Registry().check_free(name, force)  # before a download that may take long
    with tempfile.TemporaryDirectory(dir=_ensure(zoo_home() / "downloads")) as scratch:
        local = Path(scratch) / "download"
        try:
            download(url, local, expected_sha256=sha256, on_start=on_start, on_chunk=on_chunk)
        except ConnectionError as error:
            raise ZooError(f"could not download {url} ({error}); fetch it elsewhere and run `zoo import PATH --name {name}`") from None
        return import_checkpoint(local, name, force=force, source=url, **import_options)


def _expected_sha256(name: str, weights, sha256: str | None, allow_unpinned: bool) -> str | None:
    """The lower-case hex digest the file must have: the plugin's, else the user's; None only when opted out."""
    declared, given = (weights.sha256 or "").lower() or None, (sha256 or "").lower() or None
    for digest in (declared, given):
        if digest is not None and not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ZooError(f"sha256 {digest!r} for {name} is not 64 hex digits")
    if declared and given and declared != given:
        raise ZooError(f"--sha256 {given[:16]}… differs from the {declared[:16]}… that {name}'s plugin declares; drop --sha256")
    if declared or given or allow_unpinned:
        return declared or given
    raise ZooError(
        f"{name}'s plugin declares no sha256 for {weights.urls[0]}, so zoo cannot tell the published file from "
        f"another; pass the file's hash with `zoo pull {name} --sha256 HEX`, or accept whatever the URL serves with "
        "--allow-unpinned"
    )


def _import_weights(path: Path, spec, force: bool, source: str) -> dict:
    """Import the fetched file once its content is in the format its plugin declares."""
    from .importers import detect_format, import_checkpoint

    found = detect_format(path)
    if found != spec.weights.format:
        raise ZooError(
            f"{source}: the file is {found}, but {spec.name}'s plugin declares {spec.weights.format}; nothing was "
            "installed (the URL serves another file, or the plugin is wrong)"
        )
    return import_checkpoint(path, spec.name, family=spec.family, force=force, source=source)


def _ensure(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory
