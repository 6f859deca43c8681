"""The plugin API's types: what a plugin declares about a domain (`DomainSpec`: `DataSource`, `Recipe`, `Weights`) and
about an image metric (`MetricSpec`, building a `Metric`) and about a face detector (`DetectorSpec`, loading a
`Detector` that returns `Face`s), with their constants.

This module imports nothing from zoo, so the plugin system, the registry and every spec's user can import it without
a cycle. `zoo.domains` and `zoo.metrics` re-export these names.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # model, domain, family and metric names: never a path
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
WEIGHT_FORMATS = ("zoo-safetensors", "rosinality-train", "rosinality-convert", "nvidia-ada-pkl", "nvidia-tf-pkl")


@dataclass(frozen=True)
class DataSource:
    """Where a domain's training images come from and what a user's folder must look like."""

    description: str
    license: str
    layout: str = "a folder of images (png/jpg/jpeg/webp), searched recursively"
    preprocessing: str = "converted to RGB, centre-cropped and resized to the domain's resolution"
    url: str | None = None
    bundled: Path | None = None
    include: Callable[[Path], bool] | None = None  # which files of `bundled` to train on (e.g. a training split)
    min_images: int = 100
    checker: Callable[[Path], list[str]] | None = None
    alignment: str | None = None  # how photos are cut to match: "ffhq" (faces, zoo.align), "center-crop", or None

    def check(self, folder: str | Path) -> list[str]:
        """Problems with a user's data folder (empty list = looks usable)."""
        folder = Path(folder)
        if not folder.is_dir():
            return [f"{folder} is not a folder"]
        count = sum(1 for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
        problems = [] if count >= self.min_images else [f"{folder} holds {count} images; this domain expects at least {self.min_images}"]
        return problems + (self.checker(folder) if self.checker else [])


@dataclass(frozen=True)
class Recipe:
    """How the domain's model is made: from scratch when `base` is None, else fine-tuned from `base`."""

    base: str | None
    iters: int
    batch: int = 16
    lr: float = 0.002
    freeze_fc: bool = True
    freeze_d: int = 0
    augment: str = "auto"
    r1_gamma: float = 10.0
    swap_layers: int = 0
    appearance_layers: int = 4
    truncation: float = 0.7
    method: str = "bounded"  # how `zoo translate` into this domain works by default (--method auto)
    architecture: dict | None = None  # ModelConfig fields (style_dim, n_mlp, channels) of a base trained from scratch

    def __post_init__(self):
        if self.iters <= 0 or self.batch <= 0 or self.lr <= 0:
            raise ValueError("iters, batch and lr must be positive")
        if self.augment not in ("auto", "ada", "diffaug", "off"):
            raise ValueError(f"augment must be auto, ada, diffaug or off, not {self.augment!r}")
        if min(self.freeze_d, self.swap_layers, self.appearance_layers) < 0 or not 0 < self.truncation <= 1:
            raise ValueError("freeze_d, swap_layers, appearance_layers must be >= 0 and truncation in (0, 1]")


@dataclass(frozen=True)
class Weights:
    """Published weights: tried URL by URL, verified against sha256 when the publisher gave one."""

    urls: tuple[str, ...]
    format: str
    license: str
    sha256: str | None = None
    notes: str = ""

    def __post_init__(self):
        if not self.urls:
            raise ValueError("weights need at least one URL")
        if self.format not in WEIGHT_FORMATS:
            raise ValueError(f"weights format must be one of {', '.join(WEIGHT_FORMATS)}, not {self.format!r}")


@dataclass(frozen=True)
class DomainSpec:
    name: str
    family: str
    description: str
    resolution: int
    data: DataSource
    recipe: Recipe
    weights: Weights | None = None
    plugin: str = field(default="", compare=False)

    def __post_init__(self):
        for label, value in (("name", self.name), ("family", self.family)):
            if not isinstance(value, str) or not NAME_PATTERN.match(value):
                raise ValueError(f"domain {label} {value!r} must be lowercase [a-z0-9-] (never a path)")
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(f"domain {self.name}: resolution must be a power of two >= 8, got {self.resolution}")
        if self.recipe.base == self.name:
            raise ValueError(f"domain {self.name}: a recipe cannot fine-tune a domain from itself")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["data"].pop("checker")
        data["data"].pop("include")
        data["data"]["bundled"] = str(self.data.bundled) if self.data.bundled else None
        return data


class Metric:
    """A distance between images; subclasses define `features` (default: the images) and `distance_between`."""

    name: str = ""
    label: str = ""

    def features(self, images: torch.Tensor) -> Any:
        return images

    def distance_between(self, features_a: Any, features_b: Any) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, images_a: torch.Tensor, images_b: torch.Tensor) -> torch.Tensor:
        return self.distance_between(self.features(images_a), self.features(images_b))


@dataclass(frozen=True)
class MetricSpec:
    """`create(device)` returns a Metric on that device; `needs` names the weights it loads (None: none)."""

    name: str
    description: str
    create: Callable[[torch.device], Metric]
    needs: str | None = None
    plugin: str = ""

    def __post_init__(self):
        if not NAME_PATTERN.match(self.name or ""):
            raise ValueError(f"metric name {self.name!r} must be lowercase [a-z0-9-]")
        if not callable(self.create):
            raise ValueError(f"metric {self.name}: create must be callable")


@dataclass(frozen=True)
class Face:
    """A detected face in image pixel coordinates (x right, y down, pixel centres at integers)."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    landmarks: np.ndarray  # (5, 2) x, y: eye, eye, nose, mouth corner, mouth corner (image left before right)

    @property
    def area(self) -> float:
        return max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0)

    def to_dict(self) -> dict:
        return {"box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 4),
                "landmarks": np.round(self.landmarks, 2).tolist()}  # fmt: skip


class Detector(Protocol):
    def __call__(self, image: np.ndarray) -> list[Face]:
        """Faces in an (H, W, 3) uint8 RGB image, most confident first."""


@dataclass(frozen=True)
class DetectorSpec:
    """A face detector a plugin provides (hook `register_detectors`): `load()` returns a `Detector`."""

    name: str
    description: str
    load: Callable[[], Detector]
    plugin: str = field(default="", compare=False)
