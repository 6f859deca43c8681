"""Restricted unpicklers: only tensor and array rebuilds, NVIDIA's persistence wrappers as plain state, no global that
could run code; every storage and tensor layout checked against the file's bytes before anything is allocated. Also
torch.save's legacy format (a series of pickles), which ada pickles embed for each storage."""

from __future__ import annotations

import argparse
import functools
import io
import math
import pickle
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from .foreign import _Recognised, _Unreadable
from .metadata import _shown

try:  # numpy >= 2
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _np_multiarray

# torch.save's legacy (non-zip) format opens with a pickled magic number.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC_NUMBER.to_bytes(10, "little")
MAX_TENSOR_DIMS = 8  # StyleGAN2's tensors have at most 5


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
