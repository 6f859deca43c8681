"""rosinality's `.pt` files (train.py checkpoints and convert_weight.py output): already zoo's layout."""

from __future__ import annotations

from pathlib import Path

from ..model import Discriminator, Generator
from .architecture import _check_state, _infer_config
from .detect import _read_head, _rosinality_kind
from .foreign import ForeignCheckpoint
from .state import _float_tensors, _latent_avg
from .torchfile import ZIP_MAGIC, _read_torch_file


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
