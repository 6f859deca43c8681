"""`read_checkpoint`: a foreign file detected, read by its format's reader, and checked against what the user expects."""

from __future__ import annotations

from pathlib import Path

from .architecture import _check_expectations
from .detect import _detect
from .foreign import ForeignCheckpoint, _about, _decoding, _Unreadable
from .nvidia_ada import _read_ada
from .nvidia_tf import _read_tf
from .rosinality import _read_rosinality


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

_READERS = {
    "rosinality-train": (_read_rosinality, "rosinality checkpoint"),
    "rosinality-convert": (_read_rosinality, "rosinality checkpoint"),
    "nvidia-ada-pkl": (_read_ada, "stylegan2-ada-pytorch pickle"),
    "nvidia-tf-pkl": (_read_tf, "TensorFlow StyleGAN2 pickle"),
}
