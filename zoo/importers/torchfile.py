"""`torch.save` files (zip and legacy) read without torch.load, through the restricted unpickler."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

from .foreign import _Unreadable
from .unpickle import (
    _declared_bytes,
    _read_legacy_torch,
    _Storage,
    _TensorBudget,
    _TorchUnpickler,
)

ZIP_MAGIC = b"PK\x03\x04"


def _read_torch_file(path: Path, zipped: bool):
    """The object tree of a torch.save file (zip or legacy format), its tensors checked against the file's bytes."""
    budget = _TensorBudget(path.stat().st_size)
    if not zipped:
        with open(path, "rb") as handle:
            return _read_legacy_torch(handle, budget)
    with zipfile.ZipFile(path) as archive:
        pickle_name = _data_pickle(archive, budget.file_bytes)
        storage_prefix = pickle_name[: -len("data.pkl")] + "data/"

        def load_storage(key: str, dtype: torch.dtype, numel) -> _Storage:
            nbytes = _declared_bytes(dtype, numel, budget)
            try:
                entry = archive.getinfo(storage_prefix + key)
            except KeyError:
                raise _Unreadable(f"storage {key} is missing from the archive; the file is damaged") from None
            if entry.file_size != nbytes or entry.compress_type != zipfile.ZIP_STORED:
                raise _Unreadable(
                    f"storage {key} holds {entry.file_size} bytes where its {numel} elements need {nbytes} "
                    "(uncompressed); the file is damaged"
                )
            return _Storage(_mapped(path, _entry_data_offset(archive, entry), nbytes).view(dtype))

        with archive.open(pickle_name) as handle:
            return _TorchUnpickler(handle, budget, load_storage).load()


def _entry_data_offset(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> int:
    """Where a stored zip entry's bytes start: after its local header (30 bytes, the name and the extra field)."""
    archive.fp.seek(entry.header_offset)
    local_header = archive.fp.read(30)
    if len(local_header) < 30 or not local_header.startswith(ZIP_MAGIC):
        raise _Unreadable(f"zip entry {entry.filename} has no local header; the file is damaged")
    name_length, extra_length = struct.unpack("<HH", local_header[26:30])
    return entry.header_offset + 30 + name_length + extra_length


def _mapped(path: Path, offset: int, nbytes: int) -> torch.Tensor:
    """The file's bytes [offset, offset + nbytes) as a copy-on-write memory map: storages a reader never converts
    (a training checkpoint's optimiser states) never enter RAM."""
    if offset + nbytes > path.stat().st_size:
        raise _Unreadable("file is truncated (a storage runs past its end); download or copy it again")
    if nbytes == 0:
        return torch.empty(0, dtype=torch.uint8)
    return torch.from_numpy(np.memmap(path, dtype=np.uint8, mode="c", offset=offset, shape=(nbytes,)))


def _data_pickle(archive: zipfile.ZipFile, file_bytes: int) -> str:
    """The archive's one data.pkl, which may not unpack to more bytes than the whole archive (a zip bomb)."""
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
    if len(pickles) != 1:
        found = "no data.pkl" if not pickles else f"{len(pickles)} data.pkl files"
        raise _Unreadable(f"a zip archive, but not a PyTorch checkpoint ({found} inside)")
    if archive.getinfo(pickles[0]).file_size > file_bytes:
        raise _Unreadable(f"its {pickles[0]} unpacks to more bytes than the whole file; the file is damaged or hostile")
    return pickles[0]
