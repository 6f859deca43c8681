"""Published weights: `pull` downloads a domain's declared file (or takes a local copy), verifies its sha256,
imports it and registers it. Downloads stream into a temporary file that is removed whatever happens."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from .domains import get_domain
from .errors import ZooError
from .files import atomic_path, sha256_file
from .home import zoo_home
from .registry import Registry

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 30


def offline() -> bool:
    return os.environ.get("ZOO_OFFLINE", "") not in ("", "0")


class ChecksumMismatch(ZooError):
    """A download whose content is not the published file's (its sha256 differs)."""


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
    if offline():
        raise ConnectionError("ZOO_OFFLINE is set")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response, atomic_path(destination) as tmp:
            length = response.headers.get("Content-Length")
            if on_start:
                on_start(int(length) if length else None)
            with open(tmp, "wb") as out:
                while chunk := response.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    if on_chunk:
                        on_chunk(len(chunk))
            if expected_sha256 and digest.hexdigest() != expected_sha256:
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
    on_start: Callable[[int | None], None] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> dict:
    """Install domain `name` from its published weights (or from `file`, a local copy of them); returns the entry."""
    from .importers import import_checkpoint

    spec = get_domain(name)
    weights = spec.weights
    if weights is None:
        base = f" from {spec.recipe.base}" if spec.recipe.base else ""
        raise ZooError(f"domain {name!r} publishes no weights; train it{base} with `zoo add-domain {name} --data DIR`")
    Registry().check_free(name, force)  # before a download that may take long
    alternative = f"`zoo import PATH --name {name} --family {spec.family}`"
    if file is not None:
        if not Path(file).is_file():
            raise ZooError(f"{file}: no such file; give the path of the downloaded {weights.urls[0] if weights.urls else 'weights'}")
        sha256 = sha256_file(file)
        if weights.sha256 and sha256 != weights.sha256:
            raise ZooError(f"{file}: sha256 {sha256[:16]}… is not the published {weights.sha256[:16]}…; wrong or damaged file")
        return import_checkpoint(file, name, family=spec.family, force=force, source=str(file))
    downloads = zoo_home() / "downloads"
    failures = []
    for url in weights.urls:
        with tempfile.TemporaryDirectory(dir=_ensure(downloads)) as scratch:
            local = Path(scratch) / url.rsplit("/", 1)[-1]
            try:
                download(url, local, expected_sha256=weights.sha256, on_start=on_start, on_chunk=on_chunk)
            except ChecksumMismatch as error:
                failures.append(str(error))
                continue
            except ConnectionError as error:
                failures.append(f"{url} ({error})")
                continue
            return import_checkpoint(local, name, family=spec.family, force=force, source=url)
    raise ZooError(
        f"could not download {'; '.join(failures)}; fetch the file elsewhere and run `zoo pull {name} --file PATH` "
        f"(or {alternative})"
    )


def _ensure(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory
