"""`ForeignCheckpoint` (a file of another project, in zoo's layout) and the one-line wording of a file's problems."""

from __future__ import annotations

import contextlib
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoint import build_module
from ..errors import ZooError
from ..model import Discriminator, Generator, ModelConfig
from ..specs import WEIGHT_FORMATS
from .metadata import plain_metadata

FORMATS = WEIGHT_FORMATS  # what detect_format tells apart


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
