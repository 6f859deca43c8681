"""Users' photos as a domain's model sees them: each face found and aligned (or the photo centre-cropped), as its
domain's data declares (`DataSource.alignment`); `zoo align`, and `--align` / `--paste-back` of translate, invert
and eval.

A photo with several faces gives one crop each, numbered left to right (`photo-face1`, `photo-face2`, ...), or only
the largest with `largest`; a photo with no face is a one-line error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .align import ALIGNMENTS, Transform, align_center, align_ffhq, paste_back
from .data import images_to_float, load_image_rgb
from .detect import DEFAULT_DETECTOR, load_detector
from .errors import ZooError
from .images import all_or_nothing, check_free, check_image_memory, load_images, named_inputs, save_image, to_uint8

ALIGN_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class AlignSettings:
    """How photos are prepared: `align` auto (as the domain's data declares), on (as declared, FFHQ faces when the
    domain declares nothing) or off (centre crop, as before); `largest`: one face per photo; which `detector`."""

    align: str = "auto"
    largest: bool = False
    detector: str = DEFAULT_DETECTOR

    def __post_init__(self):
        if self.align not in ALIGN_MODES:
            raise ZooError(f"--align {self.align!r}: use auto, on or off")


@dataclass
class Crop:
    """One model input made from a photo: its output name, the photo, the crop and how it was cut."""

    name: str
    photo: Path
    image: Image.Image
    transform: Transform


def alignment_for(domain: str, settings: AlignSettings | None) -> str | None:
    """The alignment `domain`'s inputs get: None (plain centre crop), 'ffhq' or 'center-crop'."""
    from .plugins import registered_domains

    if settings is None or settings.align == "off":
        return None
    spec = registered_domains().get(domain)
    declared = spec.data.alignment if spec else None
    if declared not in (None, *ALIGNMENTS):
        raise ZooError(f"domain {domain}: its plugin declares alignment {declared!r}; zoo knows {', '.join(ALIGNMENTS)} (or --align off)")
    return declared if settings.align == "auto" else declared or "ffhq"


def crops_of(path: Path, name: str, kind: str, size: int, settings: AlignSettings) -> list[Crop]:
    """The crops of one photo: its faces (FFHQ), or its centre."""
    photo = load_image_rgb(path)
    if kind == "center-crop":
        return [Crop(name, path, *align_center(photo, size))]
    faces = load_detector(settings.detector)(np.array(photo))
    if not faces:
        raise ZooError(f"{path}: no face found; give a photo with a face at least 20 px wide, or use --align off")
    faces = [max(faces, key=lambda face: face.area)] if settings.largest else sorted(faces, key=lambda face: face.box[0])
    names = [name] if len(faces) == 1 else [f"{name}-face{index}" for index in range(1, len(faces) + 1)]
    return [Crop(face_name, path, *align_ffhq(photo, face, size)) for face_name, face in zip(names, faces)]


def photo_crops(inputs: list[str | Path], kind: str, size: int, settings: AlignSettings) -> list[Crop]:
    """Every crop of the inputs (files, or folders of images) in input order."""
    return [crop for path, name in named_inputs(inputs) for crop in crops_of(path, name, kind, size, settings)]


def crop_pixels(crops: list[Crop]) -> torch.Tensor:
    """(N, 3, S, S) in [-1, 1], the generator's range."""
    return images_to_float(torch.from_numpy(np.stack([np.array(crop.image).transpose(2, 0, 1) for crop in crops])))


@dataclass
class ModelInputs:
    """Images as a model takes them, their output names, and the crops they came from (None: not aligned)."""

    images: torch.Tensor
    names: list[str]
    crops: list[Crop] | None
    labels: list[str]  # what each image is called in tables and latent files: its file's name, with a face number


def load_inputs(inputs: list[str | Path], domain: str, size: int, settings: AlignSettings | None) -> ModelInputs:
    """The inputs of `domain`'s model at `size` px: aligned as `settings` asks, else centre-cropped as before."""
    kind = alignment_for(domain, settings)
    if kind is None:
        files, names = zip(*named_inputs(inputs))
        return ModelInputs(load_images(list(files), size), list(names), None, [path.name for path in files])
    crops = photo_crops(inputs, kind, size, settings)
    check_image_memory(f"{len(crops)} aligned crops", len(crops), size)
    labels = [Path(crop.name).name + crop.photo.suffix for crop in crops]
    return ModelInputs(crop_pixels(crops), [crop.name for crop in crops], crops, labels)


def load_one_each(files: list[Path], domain: str, size: int, settings: AlignSettings | None) -> torch.Tensor:
    """One image per file (the largest face of each), so outputs stay paired with their files (`zoo eval`)."""
    if alignment_for(domain, settings) is None:
        return load_images(files, size)
    one_each = AlignSettings(settings.align, largest=True, detector=settings.detector)
    return load_inputs(files, domain, size, one_each).images


# ---------------------------------------------------------------------------------------------------------------------
# zoo align


def aligned_paths(out: Path, crops: list[Crop]) -> list[tuple[Path, Path]]:
    return [(out / f"{crop.name}.png", out / f"{crop.name}.json") for crop in crops]


def align_photos(inputs: list[str | Path], domain: str, size: int, out: Path, settings: AlignSettings, force: bool = False) -> list[Crop]:
    """`zoo align`: each crop as OUT/NAME.png and its transform (photo <-> crop pixels, the face found) as NAME.json."""
    crops = photo_crops(inputs, alignment_for(domain, AlignSettings("on")), size, settings)
    paths = aligned_paths(out, crops)
    check_free([path for pair in paths for path in pair], force)
    out.mkdir(parents=True, exist_ok=True)
    with all_or_nothing() as written:
        for crop, (image_path, transform_path) in zip(crops, paths):
            written.append(save_image(crop_pixels([crop])[0], image_path, force=True))
            crop.transform.save(transform_path)
            written.append(transform_path)
    return crops


# ---------------------------------------------------------------------------------------------------------------------
# --paste-back


def pasted_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}-pasted{path.suffix}")


def check_paste_back(crops: list[Crop] | None, targets: list[str]) -> None:
    if crops is None:
        raise ZooError("--paste-back needs aligned inputs: use it with --align auto or on, and images (not --latent)")
    if len(targets) != 1:
        raise ZooError("--paste-back puts one translation back into each photo; use it with a single --to")


def paste_translations(crops: list[Crop], per_input: list[list[Path]], rows: torch.Tensor,
                       provenance: dict | None = None) -> list[Path]:  # fmt: skip
    """Each translation (rows: (N, columns, 3, H, W)) pasted back into its photo, at the photo's size, as
    NAME-pasted.png next to the translation's file, recording `provenance`. The written files, all or none."""
    photos: dict[Path, np.ndarray] = {}
    with all_or_nothing() as written:
        for crop, images, paths in zip(crops, rows, per_input):
            photo = photos.setdefault(crop.photo, np.asarray(load_image_rgb(crop.photo)))
            for image, path in zip(images, paths):
                translated = Image.fromarray(to_uint8(image).permute(1, 2, 0).numpy()).resize((crop.transform.size,) * 2, Image.Resampling.LANCZOS)
                pasted = paste_back(photo, np.array(translated), crop.transform)
                written.append(save_image(images_to_float(torch.from_numpy(pasted).permute(2, 0, 1)), pasted_path(path), force=True,
                                          provenance={**(provenance or {}), "pasted_into": crop.photo.name}))  # fmt: skip
    return written
