"""Which format a file is, by its content, never its extension (`detect_format`)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

from .foreign import _about, _decoding, _Recognised, _Unreadable
from .torchfile import ZIP_MAGIC, _data_pickle
from .unpickle import LEGACY_TORCH_MAGIC, _FormatProbe, _TorchSkeleton

OTHER_FILE_KINDS = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip archive (unpack it first)",
    b"<!doctype html": "an HTML page (a failed download?)",
    b"<html": "an HTML page (a failed download?)",
}


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
