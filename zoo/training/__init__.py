"""StyleGAN2 training (being split into modules of one job each)."""

from .trainer import *  # noqa: F401,F403
from .trainer import _Run  # noqa: F401
