"""Reading other projects' StyleGAN2 files: rosinality `.pt` and NVIDIA stylegan2-ada-pytorch and TensorFlow `.pkl`.

Formats are told apart by content, never by extension. Nothing in a file ever runs: `.pt` files (zip and legacy
`torch.save`) and NVIDIA pickles all go through restricted unpicklers that rebuild only tensors and arrays, turn
NVIDIA's persistence and Network wrappers into plain state (their embedded source is never exec'd) and refuse every
global that could run code. One tensor-rebuild path checks every storage against the file's bytes and every tensor's
size, stride and offset against its storage before anything is allocated, so memory stays within a small multiple of
the file's size; metadata is copied within a fixed budget (`plain_metadata`). Every reader returns the generator (and
discriminator) in rosinality's key layout, which is zoo's own, with the architecture inferred from the tensor shapes.
`docs/formats.md` ("Importers") describes what each reader accepts, refuses and allows.

A module per job: `detect` (format by content), `unpickle` (restricted unpicklers, torch.save's legacy stream),
`torchfile` (torch.save zip and legacy files), `rosinality`, `nvidia_ada` and `nvidia_tf` (one reader each),
`architecture` (the config inferred from shapes), `state` and `metadata` (tensors and metadata out of decoded state),
`foreign` (`ForeignCheckpoint`), `reading` (`read_checkpoint`) and `install` (`import_checkpoint`). The public names
are re-exported here, as before the split.
"""

from .architecture import infer_config
from .detect import detect_format
from .foreign import FORMATS, ForeignCheckpoint
from .install import import_checkpoint
from .metadata import (
    METADATA_MAX_ARRAY,
    METADATA_MAX_CHARS,
    METADATA_MAX_DEPTH,
    METADATA_MAX_NODES,
    METADATA_MAX_STRING,
    TRUNCATED,
    plain_metadata,
)
from .reading import read_checkpoint
from .torchfile import ZIP_MAGIC
from .unpickle import LEGACY_MAGIC_NUMBER, LEGACY_TORCH_MAGIC

__all__ = [
    "FORMATS", "LEGACY_MAGIC_NUMBER", "LEGACY_TORCH_MAGIC", "METADATA_MAX_ARRAY", "METADATA_MAX_CHARS",
    "METADATA_MAX_DEPTH", "METADATA_MAX_NODES", "METADATA_MAX_STRING", "TRUNCATED", "ZIP_MAGIC",
    "ForeignCheckpoint", "detect_format", "import_checkpoint", "infer_config", "plain_metadata", "read_checkpoint",
]  # fmt: skip
