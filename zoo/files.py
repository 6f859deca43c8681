"""Atomic writes and hashing: a crash at any moment leaves either the old file or the new one, never half of one.

A write goes to a temporary file beside its destination, named `.DESTINATION.RANDOM.tmp`; a killed process leaves
such a file behind, which `remove_stale_temps` clears where a lock guarantees no write is under way.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Iterator

TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it gets the usual permissions, is fsynced and renamed over
    `path`; on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # after the write: writers such as safetensors replace the file, and mkstemp's own is 0600
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_directory(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def temp_name(path: Path) -> Path:
    """A fresh name beside `path` in the atomic writes' pattern (so `remove_stale_temps` clears it after a crash)."""
    return path.parent / f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"


def remove_stale_temps(folder: Path, stem: str = "") -> list[Path]:
    """Delete the temporary files of interrupted atomic writes in `folder` (whose names start with `.STEM`).

    Only safe where no write can be under way, i.e. under the lock that every writer to `folder` holds.
    """
    stale = [path for path in folder.glob(f"{TEMP_PREFIX}{stem}*{TEMP_SUFFIX}") if path.is_file() or path.is_symlink()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
