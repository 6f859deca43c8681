"""Reading other projects' StyleGAN2 files: rosinality `.pt` and NVIDIA stylegan2-ada-pytorch and TensorFlow `.pkl`.

Formats are told apart by content, never by extension. Nothing in a file ever runs: `.pt` files (zip and legacy
`torch.save`) and NVIDIA pickles all go through restricted unpicklers that rebuild only tensors and arrays, turn
NVIDIA's persistence and Network wrappers into plain state (their embedded source is never exec'd) and refuse every
global that could run code. One tensor-rebuild path checks every storage against the file's bytes and every tensor's
size, stride and offset against its storage before anything is allocated, so memory stays within a small multiple of
the file's size; metadata is copied within a fixed budget (`plain_metadata`). Every reader returns the generator (and
discriminator) in rosinality's key layout, which is zoo's own, with the architecture inferred from the tensor shapes.
`docs/formats.md` ("Importers") describes what each reader accepts, refuses and allows.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import math
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import build_module, load_model, read_info
from ..errors import ZooError
from ..files import sha256_file
from ..model import Discriminator, Generator, ModelConfig, make_kernel, standard_channels
from ..registry import install_model

try:  # numpy >= 2
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _np_multiarray

FORMATS = ("zoo-safetensors", "rosinality-train", "rosinality-convert", "nvidia-ada-pkl", "nvidia-tf-pkl")

ZIP_MAGIC = b"PK\x03\x04"
# torch.save's legacy (non-zip) format opens with a pickled magic number.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC_NUMBER.to_bytes(10, "little")
OTHER_FILE_KINDS = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip archive (unpack it first)",
    b"<!doctype html": "an HTML page (a failed download?)",
    b"<html": "an HTML page (a failed download?)",
}
MAX_TENSOR_DIMS = 8  # StyleGAN2's tensors have at most 5
# rosinality stores the upsampling blur kernels multiplied by factor**2 = 4; downsampling kernels unscaled.
UPSAMPLE_GAIN = 4


@dataclass
class ForeignCheckpoint:
    """A checkpoint read from another project's file, in zoo's (= rosinality's) layout."""

    config: ModelConfig
    g_ema: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor] | None
    latent_avg: torch.Tensor | None
    source_format: str
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        self.details = plain_metadata(self.details)  # what the file says besides its tensors, bounded

    def build(self) -> tuple[Generator, Discriminator | None]:
        """The eval-mode modules, the generator carrying `latent_avg` as its truncation centre."""
        generator = build_module(Generator, self.config, self.g_ema)
        generator.latent_avg = self.latent_avg
        discriminator = None if self.discriminator is None else build_module(Discriminator, self.config, self.discriminator)
        return generator, discriminator


class _Unreadable(Exception):
    """What is wrong with a file's content; the public functions prefix the path and raise it as a ZooError."""


class _Recognised(Exception):
    def __init__(self, source_format: str):
        super().__init__(source_format)
        self.source_format = source_format


@contextlib.contextmanager
def _about(path: Path):
    try:
        yield
    except _Unreadable as problem:
        raise ZooError(f"{path}: {problem}") from None


@contextlib.contextmanager
def _decoding(what: str):
    """Turn any failure of a decoder (pickle, zip, torch.load) into one line about the file."""
    try:
        yield
    except _Unreadable:
        raise
    except Exception as error:  # a damaged or hostile file can make the decoders raise anything
        raise _Unreadable(_decoding_problem(what, error)) from None


def _decoding_problem(what: str, error: Exception) -> str:
    text = str(error)
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    if isinstance(error, zipfile.BadZipFile):
        first_line = "its zip directory, stored at the end, is missing"
    if isinstance(error, (EOFError, zipfile.BadZipFile)) or re.search(r"truncated|EOF|central directory", text):
        return f"file is truncated ({first_line}); download or copy it again"
    return f"not a readable {what} ({type(error).__name__}: {first_line}); the file is damaged"


# ---------------------------------------------------------------------------------------------------------------------
# Restricted unpicklers


class _Inert:
    """Stands in for a global a reader does not need: accepts any construction and state, and does nothing."""

    state = None

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass


class _TfNetwork:
    """A dnnlib.tflib.network.Network reduced to its pickled state (its build_module_src is never exec'd)."""

    state: dict = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}


def _persistent_object(meta):
    """NVIDIA's torch_utils.persistence wrapper without the exec of its module_src: the object stays its metadata."""
    if not isinstance(meta, dict) or not isinstance(meta.get("state"), dict):
        raise _Unreadable("a torch_utils.persistence object in the pickle has no state")
    return meta


class _TensorBudget:
    """What one file may make zoo allocate: storages of at most the file's bytes in all (genuine storages are stored
    in the file), and tensors of at most one element per byte of the file in all.

    A genuine checkpoint never comes near either limit; a hostile one that declares sizes its bytes do not hold, points
    many tensors at one storage or repeats elements with zero strides is refused before anything is allocated.
    Together with one float32 copy per tensor, this bounds the memory of an import to a small multiple of the file's
    size (docs/formats.md, "Memory").
    """

    def __init__(self, file_bytes: int):
        self.file_bytes = file_bytes
        self.storage_bytes_left = file_bytes
        self.elements_left = file_bytes

    def take_storage(self, nbytes: int) -> None:
        if nbytes > self.storage_bytes_left:
            raise _Unreadable(
                f"file is truncated or built to exhaust memory (its storages declare more bytes than its "
                f"{self.file_bytes}); download or copy it again"
            )
        self.storage_bytes_left -= nbytes

    def take_elements(self, elements: int) -> None:
        if elements > self.elements_left:
            raise _Unreadable(
                f"its tensors hold more elements than the file has bytes ({self.file_bytes}); the file is damaged "
                "or built to exhaust memory"
            )
        self.elements_left -= elements


@dataclass
class _Storage:
    """A tensor storage read from the file: `data` is a flat tensor over bytes the file really holds."""

    data: torch.Tensor

    @property
    def numel(self) -> int:
        return self.data.numel()


@dataclass(frozen=True)
class _StorageType:
    """What a pickled `torch.FloatStorage` (etc.) global resolves to: only its dtype."""

    dtype: torch.dtype


_STORAGE_TYPES = {
    f"torch.{name}Storage": _StorageType(dtype)
    for name, dtype in {
        "Float": torch.float32, "Double": torch.float64, "Half": torch.float16, "BFloat16": torch.bfloat16,
        "Long": torch.int64, "Int": torch.int32, "Short": torch.int16, "Char": torch.int8, "Byte": torch.uint8,
        "Bool": torch.bool,
    }.items()
}


def _declared_bytes(dtype: torch.dtype, numel, budget: _TensorBudget) -> int:
    """The bytes of a storage of `numel` elements, taken from the file's budget (so they exist in the file)."""
    if type(numel) is not int or numel < 0:
        raise _Unreadable(f"a storage in the file declares {_shown(numel)} elements")
    nbytes = numel * _element_size(dtype)
    budget.take_storage(nbytes)
    return nbytes


def _empty_storage(dtype: torch.dtype, numel, budget: _TensorBudget) -> _Storage:
    """An unfilled storage of `numel` elements, once the file is known to hold that many bytes."""
    _declared_bytes(dtype, numel, budget)
    return _Storage(torch.empty(numel, dtype=dtype))


def _fill(storage: _Storage, handle, what: str) -> None:
    """Read the storage's bytes from `handle`; fewer bytes than it needs means the file is cut short."""
    target = storage.data.view(torch.uint8).numpy()
    if handle.readinto(target) != target.size:
        raise _Unreadable(f"file is truncated ({what} ends early); download or copy it again")


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty(0, dtype=dtype).element_size()


def _rebuild_tensor(budget: _TensorBudget, storage, storage_offset, size, stride, *_hooks_and_metadata):
    """torch's tensor rebuild after checking the layout against the storage (without hooks and metadata)."""
    if not isinstance(storage, _Storage):
        raise _Unreadable("a tensor in the pickle has no real storage")
    elements = _checked_layout(storage_offset, size, stride, storage.numel)
    budget.take_elements(elements)
    if elements == 0:
        return storage.data.new_zeros(size)
    return storage.data.as_strided(size, stride, storage_offset)


def _checked_layout(offset, size, stride, storage_numel: int) -> int:
    """The element count of a tensor whose offset, size and stride lie inside a storage of `storage_numel` elements
    and that holds no more elements than the storage (a zero stride would let a tiny file expand)."""
    shaped = isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride) <= MAX_TENSOR_DIMS
    numbers = (offset, *size, *stride) if shaped else (None,)
    if not all(type(n) is int for n in numbers):
        raise _Unreadable("a tensor in the pickle has a malformed size, stride or offset")
    if min(numbers) < 0:
        raise _Unreadable(
            f"a tensor in the pickle has a negative size, stride or offset ({list(size)}, {list(stride)}, {offset})"
        )
    elements = math.prod(size)
    if elements == 0:
        return 0
    last = offset + sum((n - 1) * step for n, step in zip(size, stride))
    if last >= storage_numel:
        raise _Unreadable(
            f"a tensor of size {list(size)} reaches element {last} of a storage of {storage_numel}; the file is damaged"
        )
    if elements > storage_numel:
        raise _Unreadable(
            f"a tensor of size {list(size)} and stride {list(stride)} repeats the {storage_numel} elements of its "
            "storage; zoo refuses expanded tensors, which let a small file fill memory"
        )
    return elements


def _rebuild_parameter(data, *_requires_grad_hooks_and_state):
    return data


def _load_storage(budget: _TensorBudget, data):
    """ada pickles embed each storage as the bytes of a legacy-format torch.save, read by zoo's own torch reader."""
    if not isinstance(data, bytes):
        raise _Unreadable("an embedded storage in the pickle is not bytes")
    storage = _read_legacy_torch(io.BytesIO(data), budget)
    if not isinstance(storage, _Storage):
        raise _Unreadable("an embedded storage in the pickle is not a tensor storage")
    return storage


def _encode_latin1(text, encoding="latin1"):
    """Protocol-2 pickles spell bytes as _codecs.encode(text, 'latin1'); no other codec is let run."""
    if not isinstance(text, str) or encoding != "latin1":
        raise _Unreadable("a pickled _codecs.encode call that is not a latin1 bytes literal")
    return text.encode("latin1")


_CONTAINERS = {"collections.OrderedDict": OrderedDict, "builtins.set": set, "builtins.frozenset": frozenset}
_NUMPY_SCALARS = {
    "numpy._core.multiarray.scalar": _np_multiarray.scalar,
    "numpy.core.multiarray.scalar": _np_multiarray.scalar,
    "numpy.dtype": np.dtype,
}


def _empty_array(cls, shape, dtype):
    """numpy's pickled-array constructor, always making the empty array numpy itself pickles: the array's real shape
    and data come next from its state, whose bytes are in the file (a pickled shape here could allocate anything)."""
    if cls is not np.ndarray:
        raise _Unreadable(f"a pickled array of type {_shown(cls)}, not a numpy ndarray")
    return _np_multiarray._reconstruct(np.ndarray, (0,), b"b")


_NUMPY_ARRAYS = {
    "numpy._core.multiarray._reconstruct": _empty_array,
    "numpy.core.multiarray._reconstruct": _empty_array,
    "numpy.ndarray": np.ndarray,
}
_NVIDIA_MARKERS = {
    "torch_utils.persistence._reconstruct_persistent_obj": "nvidia-ada-pkl",
    "dnnlib.tflib.network.Network": "nvidia-tf-pkl",
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only `allowed` globals (and `budgeted` ones, which receive the file's tensor budget
    first), stubs other globals of `inert_roots`, and refuses the rest."""

    allowed: dict[str, object] = {}
    budgeted: dict[str, object] = {}
    inert_roots: tuple[str, ...] = ()

    def __init__(self, file, budget: _TensorBudget | None = None):
        super().__init__(file)
        self.budget = budget

    def find_class(self, module, name):
        qualified = f"{module}.{name}"
        if qualified in self.allowed:
            return self.allowed[qualified]
        if qualified in self.budgeted:
            return functools.partial(self.budgeted[qualified], self.budget)
        if module.split(".")[0] in self.inert_roots:
            return _Inert
        raise _Unreadable(
            f"not a StyleGAN2 checkpoint zoo can read (found a pickle referencing {qualified}); loading it would "
            "run that code, so zoo refuses: get the model from its original source"
        )


_TENSOR_REBUILDS = {
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
}


class _AdaUnpickler(_RestrictedUnpickler):
    allowed = {
        **_CONTAINERS,
        **_TENSOR_REBUILDS,
        "torch_utils.persistence._reconstruct_persistent_obj": _persistent_object,
        "dnnlib.util.EasyDict": dict,
        **_NUMPY_SCALARS,
    }
    budgeted = {"torch._utils._rebuild_tensor_v2": _rebuild_tensor, "torch.storage._load_from_bytes": _load_storage}
    inert_roots = ("torch_utils", "dnnlib", "training", "torch", "numpy")


class _TfUnpickler(_RestrictedUnpickler):
    allowed = {
        **_CONTAINERS,
        "dnnlib.tflib.network.Network": _TfNetwork,
        "dnnlib.util.EasyDict": dict,
        **_NUMPY_ARRAYS,
        **_NUMPY_SCALARS,
    }
    inert_roots = ("dnnlib",)


class _TorchUnpickler(_RestrictedUnpickler):
    """torch.save's pickle: containers, argparse.Namespace and tensors, whose storages `load_storage(key, dtype,
    numel)` provides (read from the zip archive, or allocated for the legacy format to fill after the pickle)."""

    allowed = {
        **_CONTAINERS,
        **_TENSOR_REBUILDS,
        **_STORAGE_TYPES,
        "argparse.Namespace": argparse.Namespace,
        "_codecs.encode": _encode_latin1,
    }
    budgeted = {"torch._utils._rebuild_tensor_v2": _rebuild_tensor}

    def __init__(self, file, budget: _TensorBudget, load_storage):
        super().__init__(file, budget)
        self.load_storage = load_storage
        self.storages: dict[str, _Storage] = {}

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)):
            raise _Unreadable("a persistent reference in the pickle is not a tensor storage")
        _, storage_type, key, _location, numel, *view = pid
        if view and view[0] is not None:
            raise _Unreadable("it holds a storage view (written by PyTorch before 1.0), which zoo does not read")
        if key not in self.storages:
            self.storages[key] = self.load_storage(key, storage_type.dtype, numel)
        storage = self.storages[key]
        if storage.data.dtype != storage_type.dtype or storage.numel != numel:
            raise _Unreadable(f"storage {key} is declared twice, with different types or sizes; the file is damaged")
        return storage


class _FormatProbe(_RestrictedUnpickler):
    """Reads a pickle with everything stubbed until the first global that only one NVIDIA format uses."""

    allowed = {
        name: _Inert for name in {**_AdaUnpickler.allowed, **_AdaUnpickler.budgeted, **_TfUnpickler.allowed}
    }
    inert_roots = _AdaUnpickler.inert_roots

    def find_class(self, module, name):
        if f"{module}.{name}" in _NVIDIA_MARKERS:
            raise _Recognised(_NVIDIA_MARKERS[f"{module}.{name}"])
        return super().find_class(module, name)


class _TorchSkeleton(_RestrictedUnpickler):
    """Reads a torch.save pickle with every tensor stubbed and no storage read: its structure, cheaply and safely."""

    allowed = {**_CONTAINERS, "argparse.Namespace": _Inert}
    inert_roots = ("torch", "numpy", "_codecs")

    def persistent_load(self, pid):
        return None


# ---------------------------------------------------------------------------------------------------------------------
# torch.save files, read without torch.load


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


def _read_legacy_torch(handle, budget: _TensorBudget):
    """torch.save's legacy format: magic number, protocol, system info and the object pickle, then the storage keys
    and each storage's element count and bytes."""
    header = [_RestrictedUnpickler(handle).load() for _ in range(3)]
    if header[0] != LEGACY_MAGIC_NUMBER:
        raise _Unreadable("not a torch.save file (wrong magic number)")
    unpickler = _TorchUnpickler(handle, budget, lambda key, dtype, numel: _empty_storage(dtype, numel, budget))
    content = unpickler.load()
    keys = _RestrictedUnpickler(handle).load()
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(unpickler.storages):
        raise _Unreadable("its list of storages does not match the tensors in it; the file is damaged")
    for key in keys:
        storage = unpickler.storages[key]
        count = handle.read(8)
        if len(count) < 8:
            raise _Unreadable(f"file is truncated (storage {key} is missing); download or copy it again")
        if int.from_bytes(count, "little", signed=True) != storage.numel:
            raise _Unreadable(f"storage {key} is stored with a size other than its tensors' ; the file is damaged")
        _fill(storage, handle, f"storage {key}")
    return content


def _data_pickle(archive: zipfile.ZipFile, file_bytes: int) -> str:
    """The archive's one data.pkl, which may not unpack to more bytes than the whole archive (a zip bomb)."""
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
    if len(pickles) != 1:
        found = "no data.pkl" if not pickles else f"{len(pickles)} data.pkl files"
        raise _Unreadable(f"a zip archive, but not a PyTorch checkpoint ({found} inside)")
    if archive.getinfo(pickles[0]).file_size > file_bytes:
        raise _Unreadable(f"its {pickles[0]} unpacks to more bytes than the whole file; the file is damaged or hostile")
    return pickles[0]


# ---------------------------------------------------------------------------------------------------------------------
# Format detection


def detect_format(path) -> str:
    """Which of FORMATS the file is, judged by its content (never its extension); a ZooError if none."""
    path = Path(path)
    with _about(path):
        return _detect(path)


def _detect(path: Path) -> str:
    head = _read_head(path, 16)
    if not head:
        raise _Unreadable("file is empty (0 bytes); download or copy it again")
    if _is_safetensors(head, path.stat().st_size):
        return "zoo-safetensors"
    if head.startswith(ZIP_MAGIC):
        return _rosinality_kind(_torch_skeleton(path, zipped=True))
    if head.startswith(LEGACY_TORCH_MAGIC):
        return _rosinality_kind(_torch_skeleton(path, zipped=False))
    if head[0] == pickle.PROTO[0] and 2 <= head[1] <= 5:
        return _nvidia_kind(path)
    raise _Unreadable(_not_a_checkpoint(head))


def _read_head(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except FileNotFoundError:
        raise _Unreadable("no such file; check the path") from None
    except IsADirectoryError:
        raise _Unreadable("is a directory; give the checkpoint file inside it") from None
    except OSError as error:
        raise _Unreadable(f"cannot be read ({error.strerror}); check its permissions") from None


def _is_safetensors(head: bytes, file_size: int) -> bool:
    """An 8-byte little-endian header length, then the JSON header (which safetensors always opens with '{"')."""
    if head[8:10] != b'{"':
        return False
    if 8 + int.from_bytes(head[:8], "little") > file_size:
        raise _Unreadable("file is truncated (the safetensors header runs past the end); download or copy it again")
    return True


def _not_a_checkpoint(head: bytes) -> str:
    for magic, kind in OTHER_FILE_KINDS.items():
        if head.startswith(magic) or head.lower().startswith(magic):
            return f"this is {kind}, not a model checkpoint; give the .pt, .pkl or .safetensors model file"
    return (
        f"not a StyleGAN2 checkpoint zoo can read (its first bytes, {head[:8].hex(' ')}, match no supported format); "
        "zoo reads rosinality .pt, NVIDIA stylegan2-ada-pytorch and TF .pkl, and zoo .safetensors files"
    )


def _torch_skeleton(path: Path, zipped: bool):
    """The object tree of a torch.save file with its tensors left out."""
    with _decoding("PyTorch file"):
        if not zipped:
            with open(path, "rb") as handle:
                for _ in range(3):  # magic number, protocol version, system info
                    _TorchSkeleton(handle).load()
                return _TorchSkeleton(handle).load()
        with zipfile.ZipFile(path) as archive, archive.open(_data_pickle(archive, path.stat().st_size)) as handle:
            return _TorchSkeleton(handle).load()


def _rosinality_kind(content) -> str:
    if isinstance(content, dict) and "g_ema" in content:
        return "rosinality-convert" if "latent_avg" in content else "rosinality-train"
    if isinstance(content, dict) and "style.1.weight" in content:
        return "rosinality-train"  # a bare g_ema state dict
    held = ", ".join(sorted(map(str, content))[:6]) if isinstance(content, dict) else f"a {type(content).__name__}"
    raise _Unreadable(
        f"a PyTorch file, but not a rosinality StyleGAN2 checkpoint (it holds {held}); zoo reads train.py "
        "checkpoints, convert_weight.py output and bare g_ema state dicts"
    )


def _nvidia_kind(path: Path) -> str:
    with open(path, "rb") as handle, _decoding("pickle"):
        try:
            _FormatProbe(handle).load()
        except _Recognised as found:
            return found.source_format
    raise _Unreadable(
        "a Python pickle, but not an NVIDIA StyleGAN2 network pickle (it has no stylegan2-ada-pytorch or "
        "TensorFlow networks in it)"
    )


# ---------------------------------------------------------------------------------------------------------------------
# Reading


def read_checkpoint(path, *, n_mlp: int | None = None, channel_multiplier: int | None = None) -> ForeignCheckpoint:
    """Read a rosinality or NVIDIA file; `n_mlp` / `channel_multiplier`, when given, must match what the file holds."""
    path = Path(path)
    with _about(path):
        source_format = _detect(path)
        if source_format == "zoo-safetensors":
            raise _Unreadable("already a zoo checkpoint; load it with zoo.load_model, or install it with `zoo import`")
        reader, description = _READERS[source_format]
        with _decoding(description):  # the conversion runs on the file's data too: a bad shape is the file's fault
            checkpoint = reader(path)
        _check_expectations(checkpoint.config, n_mlp, channel_multiplier)
    return checkpoint


def _read_rosinality(path: Path) -> ForeignCheckpoint:
    content = _read_torch_file(path, zipped=_read_head(path, 4) == ZIP_MAGIC)
    source_format = _rosinality_kind(content)
    g_ema = _float_tensors(content.get("g_ema", content), "g_ema")
    config = _infer_config(g_ema)
    _check_state(g_ema, Generator, config, "g_ema")
    discriminator = None
    if "g_ema" in content and content.get("d") is not None:
        discriminator = _float_tensors(content["d"], "d")
        _check_state(discriminator, Discriminator, config, "d")
    details = {key: content[key] for key in ("args", "ada_aug_p") if key in content}
    latent_avg = _latent_avg(content.get("latent_avg") if "g_ema" in content else None, config)
    return ForeignCheckpoint(config, g_ema, discriminator, latent_avg, source_format, details)


def _read_ada(path: Path) -> ForeignCheckpoint:
    with open(path, "rb") as handle:
        content = _AdaUnpickler(handle, _TensorBudget(path.stat().st_size)).load()
    if not isinstance(content, dict) or content.get("G_ema") is None:
        raise _Unreadable("a stylegan2-ada-pytorch pickle without G_ema, so no generator to import")
    g_tensors, g_kwargs = _ada_network(content["G_ema"], "G_ema")
    _refuse_conditional(g_kwargs, "c_dim")
    _refuse_architecture(g_kwargs, "G_ema", "synthesis_kwargs.architecture", "skip")
    g_ema, latent_avg = _ada_generator(g_tensors)
    config = _infer_config(
        g_ema,
        lr_mlp=_number(g_kwargs, "mapping_kwargs.lr_multiplier", 0.01),
        conv_clamp=_number(g_kwargs, "synthesis_kwargs.conv_clamp", None),
    )
    _check_ada_kwargs(g_kwargs, config)
    _check_state(g_ema, Generator, config, "G_ema")
    details = {"init_kwargs": g_kwargs}
    discriminator = None
    if content.get("D") is not None:
        d_tensors, d_kwargs = _ada_network(content["D"], "D")
        _refuse_architecture(d_kwargs, "D", "architecture", "resnet")
        discriminator = _ada_discriminator(d_tensors, config)
        _check_state(discriminator, Discriminator, config, "D")
        details["discriminator_init_kwargs"] = d_kwargs
    if content.get("training_set_kwargs"):
        details["training_set_kwargs"] = content["training_set_kwargs"]
    return ForeignCheckpoint(config, g_ema, discriminator, _latent_avg(latent_avg, config), "nvidia-ada-pkl", details)


def _read_tf(path: Path) -> ForeignCheckpoint:
    with open(path, "rb") as handle:
        content = _TfUnpickler(handle).load()
    if not (isinstance(content, tuple) and len(content) == 3 and all(isinstance(n, _TfNetwork) for n in content)):
        raise _Unreadable("a dnnlib pickle, but not the (G, D, Gs) tuple of a StyleGAN2 TensorFlow snapshot")
    _, tf_d, tf_gs = content
    kwargs = tf_gs.state.get("static_kwargs") or {}
    g_variables = _tf_variables(tf_gs, "Gs")
    if any("ToRGB_lod" in name for name in g_variables):
        raise _Unreadable(
            "progressive generator (ToRGB_lod layers: StyleGAN2 config-a to config-d, or StyleGAN1) is not supported; "
            "zoo imports config-e/f skip generators such as stylegan2-ffhq-config-f.pkl"
        )
    _refuse_conditional(kwargs, "label_size")
    _refuse_architecture(kwargs, "Gs", "architecture", "skip")
    taps = _resample_taps(kwargs.get("resample_kernel") or (1, 3, 3, 1))
    g_ema, latent_avg = _tf_generator(g_variables, taps)
    config = _infer_config(g_ema, lr_mlp=_number(kwargs, "mapping_lrmul", 0.01), blur_kernel=taps)
    _check_state(g_ema, Generator, config, "Gs")
    discriminator = _tf_discriminator(_tf_variables(tf_d, "D"), config)
    _check_state(discriminator, Discriminator, config, "D")
    details = {"static_kwargs": kwargs}
    return ForeignCheckpoint(config, g_ema, discriminator, _latent_avg(latent_avg, config), "nvidia-tf-pkl", details)


_READERS = {
    "rosinality-train": (_read_rosinality, "rosinality checkpoint"),
    "rosinality-convert": (_read_rosinality, "rosinality checkpoint"),
    "nvidia-ada-pkl": (_read_ada, "stylegan2-ada-pytorch pickle"),
    "nvidia-tf-pkl": (_read_tf, "TensorFlow StyleGAN2 pickle"),
}


# ---------------------------------------------------------------------------------------------------------------------
# Architecture


def infer_config(
    g_state: dict, *, lr_mlp: float = 0.01, conv_clamp: float | None = None, blur_kernel=None
) -> ModelConfig:
    """The ModelConfig of a rosinality-layout generator state dict, from its tensor shapes.

    lr_mlp and conv_clamp cannot be read from weights; the blur kernel is read from the first upsampling conv's
    buffer when that holds data (not on the meta device), else it is `blur_kernel` or [1, 3, 3, 1].
    """
    try:
        return _infer_config(g_state, lr_mlp=lr_mlp, conv_clamp=conv_clamp, blur_kernel=blur_kernel)
    except _Unreadable as problem:
        raise ZooError(f"generator state dict: {problem}") from None


def _infer_config(g_state: dict, lr_mlp=0.01, conv_clamp=None, blur_kernel=None) -> ModelConfig:
    mapping = _numbered(g_state, r"style\.(\d+)\.weight", start=1)
    to_rgbs = _numbered(g_state, r"to_rgbs\.(\d+)\.conv\.weight")
    if not mapping or "input.input" not in g_state or not to_rgbs:
        raise _Unreadable(
            "not a StyleGAN2 generator in rosinality's layout (it needs style.1.weight, input.input and to_rgbs.0)"
        )
    channels = {4: g_state["input.input"].shape[1]}
    for k in to_rgbs:
        channels[8 * 2**k] = _required(g_state, f"convs.{2 * k}.conv.weight").shape[1]
    kernel = g_state.get("convs.0.conv.blur.kernel")
    if blur_kernel is None and kernel is not None and not kernel.is_meta:
        blur_kernel = _blur_taps(kernel)
    try:
        return ModelConfig(
            size=8 * 2 ** to_rgbs[-1],
            style_dim=g_state["style.1.weight"].shape[1],
            n_mlp=len(mapping),
            lr_mlp=lr_mlp,
            channels=channels,
            blur_kernel=blur_kernel or (1, 3, 3, 1),
            conv_clamp=conv_clamp,
        )
    except ValueError as error:
        raise _Unreadable(f"its tensor shapes give no valid StyleGAN2 architecture ({error})") from None


def _blur_taps(kernel: torch.Tensor) -> tuple[int, ...]:
    """The integer taps whose normalised outer product is this (possibly gain-scaled) 2-D FIR kernel."""
    kernel = kernel.detach().to(torch.float64)
    row = kernel.sum(dim=1) if kernel.ndim == 2 else kernel.new_zeros(0)
    if not len(row) or (row <= 0).any():
        raise _Unreadable(f"blur kernel of shape {list(kernel.shape)} is not a 2-D low-pass FIR filter")
    taps = tuple(int(round(tap)) for tap in (row / row.min()).tolist())
    if not torch.allclose(make_kernel(taps).to(torch.float64), kernel / kernel.sum(), atol=1e-6):
        raise _Unreadable("blur kernel is not the outer product of integer taps, which zoo's model needs")
    return taps


def _check_expectations(config: ModelConfig, n_mlp: int | None, channel_multiplier: int | None) -> None:
    """The user's --n-mlp / --channel-multiplier must describe the file; the message names the tensor that differs."""
    if n_mlp is not None and n_mlp != config.n_mlp:
        raise _Unreadable(
            f"n_mlp={n_mlp} does not match the file: its mapping network has {config.n_mlp} layers "
            f"(style.1.weight to style.{config.n_mlp}.weight); pass n_mlp={config.n_mlp} or leave it out"
        )
    if channel_multiplier is None:
        return
    standard = standard_channels(config.size, channel_multiplier)
    for res, width in config.channels.items():
        if standard[res] != width:
            raise _Unreadable(
                f"channel_multiplier={channel_multiplier} does not match the file: {_width_tensor(res)} is {width} "
                f"channels wide at {res} px, where channel_multiplier {channel_multiplier} gives {standard[res]}; "
                "leave it out (zoo reads the widths from the file)"
            )


def _width_tensor(res: int) -> str:
    return "input.input" if res == 4 else f"convs.{2 * (res.bit_length() - 4)}.conv.weight"


def _check_state(state: dict, module_class, config: ModelConfig, what: str) -> None:
    """The state dict must load strictly into module_class(config)."""
    with torch.device("meta"):
        expected = {name: tuple(tensor.shape) for name, tensor in module_class(config).state_dict().items()}
    wrong = [name for name in expected if name in state and tuple(state[name].shape) != expected[name]]
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if wrong:
        problem = (
            f"tensor {wrong[0]} has shape {list(state[wrong[0]].shape)} where the architecture inferred from "
            f"the other tensors needs {list(expected[wrong[0]])}"
        )
    elif missing:
        problem = f"tensor {missing[0]} is missing ({len(missing)} missing in all)"
    elif unexpected:
        problem = f"unexpected tensor {unexpected[0]} ({len(unexpected)} in all)"
    else:
        return
    raise _Unreadable(f"{what}: {problem}; it is not a standard StyleGAN2 network")


# ---------------------------------------------------------------------------------------------------------------------
# stylegan2-ada-pytorch -> rosinality


class _TensorTable(dict):
    """name -> float32 tensor; a name the file lacks is a problem with the file, not a KeyError."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def __missing__(self, name):
        raise _Unreadable(f"{self.what} has no tensor {name}; the file is incomplete or not a StyleGAN2 network")


def _ada_network(obj, what: str) -> tuple[_TensorTable, dict]:
    """A pickled ada module -> (its parameters and persistent buffers by dotted name, its init kwargs)."""
    state = _module_state(obj, what)
    tensors = _TensorTable(what)
    _collect_tensors(state, "", tensors, what)
    init_kwargs = state.get("_init_kwargs")
    return tensors, init_kwargs if isinstance(init_kwargs, dict) else {}


def _module_state(obj, what: str) -> dict:
    if isinstance(obj, dict) and isinstance(obj.get("state"), dict):  # a persistence meta dict
        return obj["state"]
    if isinstance(obj, _Inert) and isinstance(obj.state, dict):  # a plain torch module, pickled by class
        return obj.state
    raise _Unreadable(f"{what} is not a pickled network (found {type(obj).__name__})")


def _collect_tensors(state: dict, prefix: str, out: _TensorTable, what: str, seen: set | None = None) -> None:
    seen = set() if seen is None else seen
    if id(state) in seen or len(seen) > 1024:
        raise _Unreadable(f"{what} holds one module in several places (or in a cycle); it is not a plain network")
    seen.add(id(state))
    transient = state.get("_non_persistent_buffers_set")
    transient = transient if isinstance(transient, (set, frozenset)) else set()
    buffers = {name: tensor for name, tensor in _dict_entry(state, "_buffers").items() if name not in transient}
    found = {prefix + name: tensor for name, tensor in {**_dict_entry(state, "_parameters"), **buffers}.items()}
    out.update(_as_float32({name: tensor for name, tensor in found.items() if tensor is not None}, what))
    for name, child in _dict_entry(state, "_modules").items():
        if child is not None:
            _collect_tensors(_module_state(child, what), f"{prefix}{name}.", out, what, seen)


def _dict_entry(state: dict, key: str) -> dict:
    value = state.get(key)
    return value if isinstance(value, dict) else {}


def _ada_generator(t: _TensorTable) -> tuple[dict, torch.Tensor | None]:
    if "synthesis.b4.const" not in t:
        raise _Unreadable("G_ema is not a StyleGAN2 generator (no synthesis.b4.const); StyleGAN3 is not supported")
    g = {}
    for i in _numbered(t, r"mapping\.fc(\d+)\.weight"):
        g[f"style.{i + 1}.weight"] = t[f"mapping.fc{i}.weight"]
        g[f"style.{i + 1}.bias"] = t[f"mapping.fc{i}.bias"]
    g["input.input"] = t["synthesis.b4.const"].unsqueeze(0)
    _ada_synthesis_layer(g, "conv1", t, "synthesis.b4.conv1", noise_index=0)
    _ada_torgb(g, "to_rgb1", t, "synthesis.b4.torgb")
    for k, res in enumerate(_block_resolutions(t, r"synthesis\.b(\d+)\.conv0\.weight")):
        block = f"synthesis.b{res}"
        _ada_synthesis_layer(g, f"convs.{2 * k}", t, f"{block}.conv0", noise_index=2 * k + 1)
        g[f"convs.{2 * k}.conv.blur.kernel"] = t[f"{block}.conv0.resample_filter"] * UPSAMPLE_GAIN
        _ada_synthesis_layer(g, f"convs.{2 * k + 1}", t, f"{block}.conv1", noise_index=2 * k + 2)
        _ada_torgb(g, f"to_rgbs.{k}", t, f"{block}.torgb")
        g[f"to_rgbs.{k}.upsample.kernel"] = t[f"{block}.resample_filter"] * UPSAMPLE_GAIN
    return g, t.get("mapping.w_avg")


def _ada_synthesis_layer(g: dict, name: str, t: _TensorTable, source: str, noise_index: int) -> None:
    g[f"{name}.conv.weight"] = t[f"{source}.weight"].unsqueeze(0)
    g[f"{name}.conv.modulation.weight"] = t[f"{source}.affine.weight"]
    g[f"{name}.conv.modulation.bias"] = t[f"{source}.affine.bias"]
    g[f"{name}.noise.weight"] = t[f"{source}.noise_strength"].reshape(1)
    g[f"{name}.activate.bias"] = t[f"{source}.bias"]
    g[f"noises.noise_{noise_index}"] = t[f"{source}.noise_const"][None, None]


def _ada_torgb(g: dict, name: str, t: _TensorTable, source: str) -> None:
    g[f"{name}.conv.weight"] = t[f"{source}.weight"].unsqueeze(0)
    g[f"{name}.conv.modulation.weight"] = t[f"{source}.affine.weight"]
    g[f"{name}.conv.modulation.bias"] = t[f"{source}.affine.bias"]
    g[f"{name}.bias"] = t[f"{source}.bias"].reshape(1, -1, 1, 1)


def _ada_discriminator(t: _TensorTable, config: ModelConfig) -> dict:
    size = config.size
    d = {"convs.0.0.weight": t[f"b{size}.fromrgb.weight"], "convs.0.1.bias": t[f"b{size}.fromrgb.bias"]}
    for j, res in enumerate(reversed(config.resolutions[1:]), start=1):
        block, out = f"b{res}", f"convs.{j}"
        d[f"{out}.conv1.0.weight"] = t[f"{block}.conv0.weight"]
        d[f"{out}.conv1.1.bias"] = t[f"{block}.conv0.bias"]
        d[f"{out}.conv2.0.kernel"] = t[f"{block}.conv1.resample_filter"]
        d[f"{out}.conv2.1.weight"] = t[f"{block}.conv1.weight"]
        d[f"{out}.conv2.2.bias"] = t[f"{block}.conv1.bias"]
        d[f"{out}.skip.0.kernel"] = t[f"{block}.skip.resample_filter"]
        d[f"{out}.skip.1.weight"] = t[f"{block}.skip.weight"]
    d["final_conv.0.weight"] = t["b4.conv.weight"]
    d["final_conv.1.bias"] = t["b4.conv.bias"]
    d["final_linear.0.weight"] = t["b4.fc.weight"]
    d["final_linear.0.bias"] = t["b4.fc.bias"]
    d["final_linear.1.weight"] = t["b4.out.weight"]
    d["final_linear.1.bias"] = t["b4.out.bias"]
    return d


def _refuse_conditional(kwargs: dict, key: str) -> None:
    classes = _lookup(kwargs, key) or 0
    if classes:
        raise _Unreadable(f"conditional model ({key}={_shown(classes)}) is not supported; import an unconditional model")


def _refuse_architecture(kwargs: dict, what: str, key: str, supported: str) -> None:
    """ada and TF name the layout in their kwargs; a missing entry means the default, which is the supported one."""
    found = _lookup(kwargs, key) or supported
    if found != supported:
        raise _Unreadable(
            f"{what} architecture {_shown(found)} is not supported; zoo imports StyleGAN2's default '{supported}'"
        )


def _check_ada_kwargs(kwargs: dict, config: ModelConfig) -> None:
    """The init kwargs that describe the architecture must agree with the tensors."""
    stored_and_inferred = [
        ("img_resolution", _lookup(kwargs, "img_resolution"), config.size),
        ("img_channels", _lookup(kwargs, "img_channels"), 3),
        ("z_dim", _lookup(kwargs, "z_dim"), config.style_dim),
        ("w_dim", _lookup(kwargs, "w_dim"), config.style_dim),
        ("mapping_kwargs.num_layers", _lookup(kwargs, "mapping_kwargs.num_layers"), config.n_mlp),
    ]
    base, cap = _lookup(kwargs, "synthesis_kwargs.channel_base"), _lookup(kwargs, "synthesis_kwargs.channel_max")
    if base is not None and cap is not None:
        widths = {res: min(base // res, cap) for res in config.resolutions}
        stored_and_inferred.append(("channel_base/channel_max widths", widths, config.channels))
    for key, stored, inferred in stored_and_inferred:
        if stored is not None and stored != inferred:
            raise _Unreadable(
                f"G_ema's init kwargs give {key} = {_shown(stored)}, but its tensors give {inferred}; "
                "the pickle is inconsistent"
            )


def _lookup(kwargs: dict, dotted: str):
    value = kwargs
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _number(kwargs: dict, dotted: str, default: float | None) -> float | None:
    value = _lookup(kwargs, dotted)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise _Unreadable(f"its {dotted} is {_shown(value)}, not a number")
    return float(value)


# ---------------------------------------------------------------------------------------------------------------------
# StyleGAN2 TensorFlow -> rosinality


def _tf_variables(network: _TfNetwork, what: str) -> _TensorTable:
    """All variables of a Network and its components, named like `mapping/Dense0/weight` (component key + scope)."""
    table = _TensorTable(what)
    _collect_tf_variables(network, "", table, what)
    return table


def _collect_tf_variables(network, prefix: str, table: _TensorTable, what: str, seen: set | None = None) -> None:
    seen = set() if seen is None else seen
    if not isinstance(network, _TfNetwork) or id(network) in seen or len(seen) > 64:
        raise _Unreadable(f"{what} has a component that is not a dnnlib Network of its own")
    seen.add(id(network))
    variables = {}
    for entry in network.state.get("variables") or []:
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], np.ndarray)):
            raise _Unreadable(f"{what} has a variable that is not a (name, array) pair")
        variables[f"{prefix}{entry[0]}"] = entry[1]
    table.update(_as_float32(variables, what))
    for key, component in (network.state.get("components") or {}).items():
        _collect_tf_variables(component, f"{prefix}{key}/", table, what, seen)


def _tf_generator(v: _TensorTable, taps: tuple[int, ...]) -> tuple[dict, torch.Tensor | None]:
    up_kernel = make_kernel(taps) * UPSAMPLE_GAIN
    g = {}
    for i in _numbered(v, r"mapping/Dense(\d+)/weight"):
        g[f"style.{i + 1}.weight"] = v[f"mapping/Dense{i}/weight"].T
        g[f"style.{i + 1}.bias"] = v[f"mapping/Dense{i}/bias"]
    g["input.input"] = v["synthesis/4x4/Const/const"]
    _tf_modulated_conv(g, "conv1", v, "synthesis/4x4/Conv")
    _tf_torgb(g, "to_rgb1", v, "synthesis/4x4/ToRGB")
    for k, res in enumerate(_block_resolutions(v, r"synthesis/(\d+)x\1/Conv0_up/weight")):
        scope = f"synthesis/{res}x{res}"
        _tf_modulated_conv(g, f"convs.{2 * k}", v, f"{scope}/Conv0_up", flip=True)
        g[f"convs.{2 * k}.conv.blur.kernel"] = up_kernel.clone()
        _tf_modulated_conv(g, f"convs.{2 * k + 1}", v, f"{scope}/Conv1")
        _tf_torgb(g, f"to_rgbs.{k}", v, f"{scope}/ToRGB")
        g[f"to_rgbs.{k}.upsample.kernel"] = up_kernel.clone()
    for i in _numbered(v, r"synthesis/noise(\d+)"):
        g[f"noises.noise_{i}"] = v[f"synthesis/noise{i}"]
    return {name: tensor.contiguous() for name, tensor in g.items()}, v.get("dlatent_avg")


def _resample_taps(value) -> tuple[int, ...]:
    """TF's resample_kernel: a short list of positive integer taps (a long one would make a huge 2-D kernel)."""
    if not (isinstance(value, (list, tuple)) and 1 <= len(value) <= 16
            and all(type(tap) is int and 0 < tap < 2**16 for tap in value)):
        raise _Unreadable(f"its resample_kernel {_shown(value)} is not a short list of positive integer taps")
    return tuple(value)


def _tf_conv(weight: torch.Tensor) -> torch.Tensor:
    """TF's (kh, kw, in, out) kernel -> torch's (out, in, kh, kw)."""
    return weight.permute(3, 2, 0, 1)


def _tf_modulated_conv(g: dict, name: str, v: _TensorTable, scope: str, flip: bool = False) -> None:
    weight = v[f"{scope}/weight"]
    if flip:  # TF's upsampling conv applies its kernel rotated by 180 degrees relative to rosinality's
        weight = weight.flip(0, 1)
    g[f"{name}.conv.weight"] = _tf_conv(weight).unsqueeze(0)
    g[f"{name}.conv.modulation.weight"] = v[f"{scope}/mod_weight"].T
    g[f"{name}.conv.modulation.bias"] = v[f"{scope}/mod_bias"] + 1  # TF adds the 1 at run time, rosinality stores it
    g[f"{name}.noise.weight"] = v[f"{scope}/noise_strength"].reshape(1)
    g[f"{name}.activate.bias"] = v[f"{scope}/bias"]


def _tf_torgb(g: dict, name: str, v: _TensorTable, scope: str) -> None:
    g[f"{name}.conv.weight"] = _tf_conv(v[f"{scope}/weight"]).unsqueeze(0)
    g[f"{name}.conv.modulation.weight"] = v[f"{scope}/mod_weight"].T
    g[f"{name}.conv.modulation.bias"] = v[f"{scope}/mod_bias"] + 1
    g[f"{name}.bias"] = v[f"{scope}/bias"].reshape(1, -1, 1, 1)


def _tf_discriminator(v: _TensorTable, config: ModelConfig) -> dict:
    kernel = make_kernel(config.blur_kernel)
    size = config.size
    d = {
        "convs.0.0.weight": _tf_conv(v[f"{size}x{size}/FromRGB/weight"]),
        "convs.0.1.bias": v[f"{size}x{size}/FromRGB/bias"],
    }
    for j, res in enumerate(reversed(config.resolutions[1:]), start=1):
        scope, out = f"{res}x{res}", f"convs.{j}"
        d[f"{out}.conv1.0.weight"] = _tf_conv(v[f"{scope}/Conv0/weight"])
        d[f"{out}.conv1.1.bias"] = v[f"{scope}/Conv0/bias"]
        d[f"{out}.conv2.0.kernel"] = kernel.clone()
        d[f"{out}.conv2.1.weight"] = _tf_conv(v[f"{scope}/Conv1_down/weight"])
        d[f"{out}.conv2.2.bias"] = v[f"{scope}/Conv1_down/bias"]
        d[f"{out}.skip.0.kernel"] = kernel.clone()
        d[f"{out}.skip.1.weight"] = _tf_conv(v[f"{scope}/Skip/weight"])
    d["final_conv.0.weight"] = _tf_conv(v["4x4/Conv/weight"])
    d["final_conv.1.bias"] = v["4x4/Conv/bias"]
    d["final_linear.0.weight"] = v["4x4/Dense0/weight"].T
    d["final_linear.0.bias"] = v["4x4/Dense0/bias"]
    d["final_linear.1.weight"] = v["Output/weight"].T
    d["final_linear.1.bias"] = v["Output/bias"]
    return {name: tensor.contiguous() for name, tensor in d.items()}


# ---------------------------------------------------------------------------------------------------------------------
# Helpers


def _numbered(names, pattern: str, start: int = 0) -> list[int]:
    """The numbers filling `pattern`'s group among `names`, which must run start, start+1, ... without a gap."""
    numbers = sorted(int(match.group(1)) for name in names if (match := re.fullmatch(pattern, name)))
    if numbers != list(range(start, start + len(numbers))):
        raise _Unreadable(f"layers matching {pattern!r} are numbered {_shown(numbers)}, with gaps; the file is incomplete")
    return numbers


def _block_resolutions(names, pattern: str) -> list[int]:
    """The resolutions 8, 16, ... of the upsampling blocks, which must all be present."""
    resolutions = sorted(int(match.group(1)) for name in names if (match := re.fullmatch(pattern, name)))
    if not resolutions or resolutions != [8 * 2**k for k in range(len(resolutions))]:
        raise _Unreadable(
            f"synthesis blocks at resolutions {resolutions} are not 8, 16, 32, ...; the file is incomplete"
        )
    return resolutions


def _required(state: dict, name: str) -> torch.Tensor:
    if name not in state:
        raise _Unreadable(f"tensor {name} is missing; the file is incomplete or not a StyleGAN2 generator")
    return state[name]


def _float_tensors(state, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict):
        raise _Unreadable(f"{what} is not a state dict of tensors")
    return _as_float32(state, what)


def _as_float32(named: dict, what: str) -> dict[str, torch.Tensor]:
    """name -> a float32 copy of each tensor or numeric array (a copy, so nothing keeps the file's storages alive).

    Each file object is copied at most once: a tensor stored under two names is refused, since a file could
    otherwise name one tensor a million times and have each name copied.
    """
    copies, first_name = {}, {}
    for name, value in named.items():  # `named` keeps every value alive, so their ids stay distinct
        if id(value) in first_name:
            raise _Unreadable(f"{what}.{name} and {first_name[id(value)]} are one tensor in the file; the file is damaged")
        first_name[id(value)] = name
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
            value = torch.from_numpy(value)
        if not isinstance(value, torch.Tensor):
            raise _Unreadable(f"{what}.{name} is not a numeric tensor")
        copies[name] = value.detach().to("cpu", torch.float32, copy=True).contiguous()
    return copies


def _latent_avg(value, config: ModelConfig) -> torch.Tensor | None:
    if value is None:
        return None
    if not isinstance(value, torch.Tensor) or value.numel() != config.style_dim:
        shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise _Unreadable(
            f"the stored mean latent has shape {shape}, but the mapping network is {config.style_dim} wide"
        )
    return value.detach().to("cpu", torch.float32, copy=True).reshape(-1)


# What plain_metadata keeps of one value (see docs/formats.md, "Metadata from imported files").
METADATA_MAX_NODES = 2000
METADATA_MAX_DEPTH = 12
METADATA_MAX_STRING = 1000
METADATA_MAX_CHARS = 100_000
METADATA_MAX_ARRAY = 64
TRUNCATED = "…(truncated by zoo)"


def plain_metadata(value):
    """A bounded, plain-JSON copy of metadata read from a file (rosinality args, NVIDIA kwargs, a source's lineage).

    Dicts get str keys; tuples and sets become lists; numpy and torch scalars and small arrays become Python numbers
    and lists; anything else becomes "<TypeName>". The copy holds at most METADATA_MAX_NODES values, nests at most
    METADATA_MAX_DEPTH deep, and keeps at most METADATA_MAX_STRING characters per string and METADATA_MAX_CHARS in
    all; past a limit the rest is cut and marked with TRUNCATED, so a file whose metadata repeats one shared list
    a billion times costs a few kilobytes, never the registry's size or `zoo list`'s time.
    """
    return _MetadataCopy().copy(value, 0)


def _shown(value, width: int = 80) -> str:
    """A value from a file as a short text for a message (repr of a hostile value could take forever)."""
    text = json.dumps(plain_metadata(value), ensure_ascii=False)
    return text if len(text) <= width else text[:width] + "…"


class _MetadataCopy:
    def __init__(self):
        self.nodes_left = METADATA_MAX_NODES
        self.chars_left = METADATA_MAX_CHARS

    def copy(self, value, depth: int):
        self.nodes_left -= 1
        if isinstance(value, argparse.Namespace):
            value = vars(value)
        if isinstance(value, (np.ndarray, np.generic, torch.Tensor)):
            shape = list(value.shape)
            if math.prod(shape) > METADATA_MAX_ARRAY:
                return f"<{type(value).__name__} of shape {shape}>"
            value = value.tolist()
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value if abs(value) < 2**63 else f"<int of {value.bit_length()} bits>"
        if isinstance(value, float):
            return value if math.isfinite(value) else repr(value)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (dict, list, tuple, set, frozenset)):
            return self.container(value, depth)
        return f"<{type(value).__name__}>"

    def text(self, value: str) -> str:
        kept = value[: max(0, min(METADATA_MAX_STRING, self.chars_left))]
        self.chars_left -= len(kept)
        return kept if len(kept) == len(value) else kept + TRUNCATED

    def key(self, key) -> str:
        if isinstance(key, str):
            return self.text(key)
        return str(key) if key is None or isinstance(key, (bool, int, float)) and abs(key) < 2**63 else f"<{type(key).__name__}>"

    def container(self, value, depth: int):
        is_dict = isinstance(value, dict)
        if depth >= METADATA_MAX_DEPTH:
            return TRUNCATED
        copied = {} if is_dict else []
        for count, item in enumerate(value.items() if is_dict else value):
            if self.nodes_left <= 0 or self.chars_left <= 0:
                left = f"{len(value) - count} more {'entries' if is_dict else 'items'}{TRUNCATED}"
                if is_dict:
                    copied["…"] = left
                else:
                    copied.append(left)
                break
            if is_dict:
                copied[self.key(item[0])] = self.copy(item[1], depth + 1)
            else:
                copied.append(self.copy(item, depth + 1))
        return copied


# ---------------------------------------------------------------------------------------------------------------------
# Installing


def import_checkpoint(
    path,
    name: str,
    *,
    family: str | None = None,
    force: bool = False,
    n_mlp: int | None = None,
    channel_multiplier: int | None = None,
    registry=None,
    source: str | None = None,
) -> dict:
    """Read any supported file and install it as checkpoints/NAME.safetensors (family defaults to NAME).

    Returns the registry entry; its lineage records the source (`source`, e.g. a URL, else the file name), format,
    sha256, and the source's details.
    """
    path = Path(path)
    if detect_format(path) == "zoo-safetensors":
        model = load_model(path, with_discriminator=read_info(path).has_discriminator)
        with _about(path):
            _check_expectations(model.info.config, n_mlp, channel_multiplier)
        generator, discriminator = model.generator, model.discriminator
        lineage = {"source_format": "zoo-safetensors", "source_lineage": model.info.lineage}
    else:
        checkpoint = read_checkpoint(path, n_mlp=n_mlp, channel_multiplier=channel_multiplier)
        generator, discriminator = checkpoint.build()
        lineage = {"source_format": checkpoint.source_format, "details": checkpoint.details}
    with _about(path):
        _refuse_non_finite(generator, discriminator)
    lineage.update(transform="import", source=source or path.name, source_sha256=sha256_file(path))
    return install_model(
        name,
        generator,
        family=family or name,
        lineage=plain_metadata(lineage),
        discriminator=discriminator,
        force=force,
        registry=registry,
    )


def _refuse_non_finite(generator: Generator, discriminator: Discriminator | None) -> None:
    """NaN or infinite weights (a diverged run, a damaged file) would install fine and sample garbage: refuse them."""
    tensors = {f"g_ema.{name}": tensor for name, tensor in generator.state_dict().items()}
    tensors["latent_avg"] = generator.truncation_center()
    if discriminator is not None:
        tensors.update({f"d.{name}": tensor for name, tensor in discriminator.state_dict().items()})
    for name, tensor in tensors.items():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise _Unreadable(
                f"tensor {name} holds {bad} NaN or infinite values (of {tensor.numel()}); the weights are broken "
                "(a diverged training run?), so zoo does not install them"
            )
