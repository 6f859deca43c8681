"""zoo: a plugin-based, multi-domain StyleGAN2 model zoo for unsupervised image-to-image translation."""

__version__ = "0.1.0"
