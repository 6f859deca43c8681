"""zoo's checkpoint format: one `.safetensors` file per domain model.

Tensors: `g_ema.<rosinality key>` for the generator, `latent_avg` for its truncation centre, and optionally
`d.<key>` for the discriminator (kept for fine-tuning). Metadata (string -> string; JSON where nested) carries the
format version, model config, domain, family, lineage, the mapping network's hash, zoo version and creation time,
so a file describes itself without the registry. `docs/formats.md` documents every key.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from . import __version__
from .errors import ZooError, machine_failure
from .files import atomic_path, sha256_file
from .model import Discriminator, Generator, ModelConfig

FORMAT_VERSION = 1
GENERATOR_PREFIX = "g_ema."
DISCRIMINATOR_PREFIX = "d."
LATENT_AVG = "latent_avg"


@dataclass
class ModelInfo:
    """What a checkpoint's header says about it (read without loading any tensor)."""

    path: Path
    config: ModelConfig
    domain: str
    family: str
    lineage: dict
    mapping_sha256: str
    has_discriminator: bool
    zoo_version: str
    created: str
    format_version: int = FORMAT_VERSION
    tensor_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)

    @property
    def generator_parameters(self) -> int:
        return sum(math.prod(shape) for name, shape in self.tensor_shapes.items() if name.startswith(GENERATOR_PREFIX))


@dataclass
class ZooModel:
    """A loaded domain model: the EMA generator, the discriminator when asked for, and the header."""

    generator: Generator
    discriminator: Discriminator | None
    info: ModelInfo
    sha256: str | None = None  # the file's sha256 when it was checked against registry.toml (None: loaded by path)


def mapping_sha256(generator_state: dict[str, torch.Tensor]) -> str:
    """Hash of the mapping network's weights: two models are in one family exactly when these are equal."""
    digest = hashlib.sha256()
    for name in sorted(key for key in generator_state if key.startswith("style.")):
        digest.update(name.encode())
        digest.update(generator_state[name].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_model(
    path: str | Path,
    generator: Generator,
    *,
    domain: str,
    family: str,
    lineage: dict,
    discriminator: Discriminator | None = None,
) -> str:
    """Write the model atomically and return the file's sha256."""
    generator_state = generator.state_dict()
    tensors = {GENERATOR_PREFIX + name: tensor for name, tensor in generator_state.items()}
    tensors[LATENT_AVG] = generator.truncation_center().view(-1)
    if discriminator is not None:
        tensors.update({DISCRIMINATOR_PREFIX + name: tensor for name, tensor in discriminator.state_dict().items()})
    tensors = {name: tensor.detach().to("cpu", torch.float32).contiguous() for name, tensor in tensors.items()}
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    config = generator.config
    metadata = {
        "format": "pt",
        "zoo.format_version": str(FORMAT_VERSION),
        "zoo.config": json.dumps(config.to_dict()),
        "zoo.domain": domain,
        "zoo.family": family,
        "zoo.lineage": json.dumps(lineage, sort_keys=True),
        "zoo.mapping_sha256": mapping_sha256(generator_state),
        "zoo.version": __version__,
        "zoo.created": created,
        "modelspec.architecture": "stylegan2",
        "modelspec.implementation": "zoo",
        "modelspec.title": domain,
        "modelspec.resolution": f"{config.size}x{config.size}",
        "modelspec.date": created,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as error:  # safetensors reports a failed write (e.g. a full disk) this way
            raise machine_failure(error, path, "the checkpoint was not written") from None
    return sha256_file(path)


def read_info(path: str | Path) -> ModelInfo:
    """Parse and validate a checkpoint's header; a one-line ZooError if the file is not a sound zoo checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no such file; give the path of a .safetensors model or a name from `zoo list`")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            slices = {name: handle.get_slice(name) for name in handle.keys()}
            shapes = {name: tuple(piece.get_shape()) for name, piece in slices.items()}
            dtypes = {name: piece.get_dtype() for name, piece in slices.items()}
    except (SafetensorError, OSError, ValueError) as error:
        raise ZooError(f"{path}: not a readable safetensors file ({_first_line(error)}); re-download or re-export it") from None
    if "zoo.format_version" not in metadata:
        raise ZooError(f"{path}: safetensors file without zoo metadata; bring it in with `zoo import {path} --name NAME`")
    _check_unique_names(path)
    info = _info_from_metadata(path, metadata, shapes)
    _check_shapes(info)
    _check_dtypes(path, dtypes)
    return info


def load_model(
    path: str | Path,
    *,
    expected_sha256: str | None = None,
    with_discriminator: bool | str = False,
    device: str | torch.device = "cpu",
) -> ZooModel:
    """Load a checkpoint (verifying its sha256 when one is expected) into eval-mode modules on `device`.

    with_discriminator: True (the file must hold one), False, or "auto" (the discriminator when the file holds one).
    """
    path = Path(path)
    info = read_info(path)
    if with_discriminator == "auto":
        with_discriminator = info.has_discriminator
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise ZooError(
                f"{path}: sha256 {actual[:12]}… does not match registry.toml ({expected_sha256[:12]}…); "
                "the file changed after it was registered: restore it or re-register it with `zoo import --force`"
            )
    if with_discriminator and not info.has_discriminator:
        raise ZooError(f"{path}: holds no discriminator, which fine-tuning needs; use a checkpoint saved with one")
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, RuntimeError) as error:
        raise ZooError(f"{path}: tensor data unreadable ({_first_line(error)}); the file is truncated or corrupt") from None
    generator = build_module(Generator, info.config, _strip(tensors, GENERATOR_PREFIX))
    generator.latent_avg = tensors[LATENT_AVG]
    discriminator = build_module(Discriminator, info.config, _strip(tensors, DISCRIMINATOR_PREFIX)) if with_discriminator else None
    return ZooModel(generator=generator, discriminator=discriminator, info=info, sha256=expected_sha256)


def build_module(module_class, config: ModelConfig, state: dict[str, torch.Tensor]):
    """An eval-mode module holding `state` (built on the meta device, so no time goes into random initialisation)."""
    with torch.device("meta"):
        module = module_class(config)
    module.load_state_dict(state, strict=True, assign=True)
    return module.eval()


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {name[len(prefix):]: tensor for name, tensor in tensors.items() if name.startswith(prefix)}


def _info_from_metadata(path: Path, metadata: dict[str, str], shapes: dict) -> ModelInfo:
    try:
        version = int(metadata["zoo.format_version"])
        if version > FORMAT_VERSION:
            raise ZooError(f"{path}: written by a newer zoo (format {version}, this zoo reads {FORMAT_VERSION}); upgrade zoo")
        return ModelInfo(
            path=path,
            config=ModelConfig.from_dict(_json_object(metadata, "zoo.config")),
            domain=metadata["zoo.domain"],
            family=metadata["zoo.family"],
            lineage=_json_object(metadata, "zoo.lineage"),
            mapping_sha256=metadata["zoo.mapping_sha256"],
            has_discriminator=any(name.startswith(DISCRIMINATOR_PREFIX) for name in shapes),
            zoo_version=metadata.get("zoo.version", "unknown"),
            created=metadata.get("zoo.created", "unknown"),
            format_version=version,
            tensor_shapes=shapes,
        )
    except ZooError:
        raise
    except (KeyError, ValueError, TypeError, RecursionError) as error:
        raise ZooError(f"{path}: damaged zoo metadata ({type(error).__name__}: {_first_line(error)[:200]}); re-export the model") from None


def _json_object(metadata: dict[str, str], key: str) -> dict:
    """A metadata entry that holds a JSON object (a deeply nested one raises RecursionError, reported as damage)."""
    value = json.loads(metadata[key])
    if not isinstance(value, dict):
        raise TypeError(f"{key} is a JSON {type(value).__name__}, not an object")
    return value


def _check_unique_names(path: Path) -> None:
    """safetensors keeps the last of two tensors of one name; a header naming one twice is damaged or hostile.

    Called after safe_open accepted the file, so the header's length is sound and its JSON well-formed.
    """
    with open(path, "rb") as handle:
        header = handle.read(int.from_bytes(handle.read(8), "little"))

    def unique(pairs):
        repeated = sorted(name for name, count in Counter(name for name, _ in pairs).items() if count > 1)
        if repeated:
            raise ZooError(f"{path}: its header names {repeated[0]!r} twice; the file is damaged or was edited: re-export it")
        return dict(pairs)

    json.loads(header, object_pairs_hook=unique)


def expected_shapes(config: ModelConfig, with_discriminator: bool) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape a checkpoint of this config holds (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        modules = [(GENERATOR_PREFIX, Generator(config))]
        if with_discriminator:
            modules.append((DISCRIMINATOR_PREFIX, Discriminator(config)))
    shapes = {prefix + name: tuple(t.shape) for prefix, module in modules for name, t in module.state_dict().items()}
    shapes[LATENT_AVG] = (config.style_dim,)
    return shapes


def _check_shapes(info: ModelInfo) -> None:
    expected = expected_shapes(info.config, info.has_discriminator)
    actual = info.tensor_shapes
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    wrong = sorted(name for name in set(expected) & set(actual) if expected[name] != actual[name])
    if missing or unexpected or wrong:
        if wrong:
            name = wrong[0]
            problem = f"tensor {name} has shape {list(actual[name])} but the config needs {list(expected[name])}"
        elif missing:
            problem = f"tensor {missing[0]} is missing ({len(missing)} missing in all)"
        else:
            problem = f"unexpected tensor {unexpected[0]} ({len(unexpected)} unexpected in all)"
        raise ZooError(f"{info.path}: tensors do not match the stored config: {problem}; the file is damaged or was edited")


def _check_dtypes(path: Path, dtypes: dict[str, str]) -> None:
    """zoo writes float32 only; another dtype (an int64 tensor, say) means the file was edited or made elsewhere."""
    for name, dtype in sorted(dtypes.items()):
        if dtype != "F32":
            raise ZooError(
                f"{path}: tensor {name} is {dtype}, but zoo checkpoints hold float32 (F32) tensors only; the file is "
                "damaged or was edited: re-export it with zoo"
            )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def read_safetensors(path: Path, kind: str, fix: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a safetensors file that is not a checkpoint (a latent, an encoder); one line naming it
    as `kind`, with `fix`, when it cannot be read."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}, {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise ZooError(f"{path}: not a readable {kind} ({_first_line(error)}); {fix}") from None
