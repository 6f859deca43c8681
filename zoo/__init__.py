"""zoo: a plugin-based, multi-domain StyleGAN2 model zoo for unsupervised image-to-image translation.

The public API, re-exported here: `load`, `import_checkpoint`, `install_model`, `sample`, `read_info`, the model
classes, and `ZooError`; and `zoo.images` (image files, grids, provenance). Each lives in its own module (see
docs/architecture.md).
"""

__version__ = "0.1.0"

from . import images  # noqa: E402, F401 - `import zoo` gives zoo.images
from .checkpoint import ModelInfo, ZooModel, load_model, read_info, save_model  # noqa: E402
from .errors import ZooError  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .importers import import_checkpoint, read_checkpoint  # noqa: E402
from .model import Discriminator, Generator, ModelConfig  # noqa: E402
from .registry import Registry, install_model, load  # noqa: E402
from .sampling import sample  # noqa: E402

__all__ = [
    "Discriminator",
    "Generator",
    "ModelConfig",
    "ModelInfo",
    "Registry",
    "ZooError",
    "ZooModel",
    "hookimpl",
    "import_checkpoint",
    "install_model",
    "load",
    "load_model",
    "read_checkpoint",
    "read_info",
    "sample",
    "save_model",
]
