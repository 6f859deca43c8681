"""Reading other projects' StyleGAN2 files (being split into modules of one job each)."""

from .unpickle import *  # noqa: F401,F403
from .unpickle import _AdaUnpickler, _np_multiarray, _read_torch_file, _TfUnpickler  # noqa: F401
