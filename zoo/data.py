"""Training data: a folder of images, decoded once into a cached uint8 tensor, and a seeded sampler over it.

`prepare_dataset` walks the folder (png/jpg/jpeg/webp, recursively), converts every image to RGB, centre-crops and
resizes it to the model resolution, and caches the result as one safetensors file keyed by the files' paths, sizes and
modification times, so later runs (and a resumed run) skip the decoding. The cache is memory-mapped, so several
training processes on one machine share one copy. Files that cannot be used are skipped and reported, never fatal.

`EpochSampler` says which images each step trains on. It is a pure function of (seed, step): a resumed run sees exactly
the batches an uninterrupted one would, and each distributed rank takes its share of the same global batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from safetensors.torch import save_file

from .errors import ZooError
from .files import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MIN_SIDE = 8
# Part of the cache key: bump it when the preprocessing changes, so stale caches are not reused.
PREPROCESSING_VERSION = 1
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class UnusableImage(ZooError):
    """An image file that cannot be trained on; `reason` says why without the path (for the skip report)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.reason = reason


# ---------------------------------------------------------------------------------------------------------------------
# One image


def load_image_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode an image file into an upright 8-bit RGB image; UnusableImage (a ZooError) if it cannot be used.

    EXIF orientation is applied; transparent pixels (RGBA, LA, palette or grey with a transparency key) are composited
    on white; CMYK is converted; 16-bit greyscale is scaled to 8 bits rather than clipped. An image of more pixels than
    Pillow's limit (`Image.MAX_IMAGE_PIXELS`) is refused as a decompression bomb before it is decoded: Pillow itself
    refuses only above twice its limit and decodes anything below with a warning.
    """
    path = Path(path)
    if not path.is_file():
        raise UnusableImage(path, "a folder, not an image file" if path.is_dir() else "no such file")
    try:
        if path.stat().st_size == 0:
            raise UnusableImage(path, "empty file (0 bytes)")
        with Image.open(path) as image:
            limit = Image.MAX_IMAGE_PIXELS
            if limit and image.width * image.height > limit:
                raise UnusableImage(path, f"refused as a decompression bomb ({image.width}x{image.height} px, over {limit} px)")
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as error:
        raise UnusableImage(path, f"refused as a decompression bomb ({error})") from None
    except UnidentifiedImageError:
        raise UnusableImage(path, "not an image Pillow can identify") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        raise UnusableImage(path, f"unreadable or truncated ({_first_line(error)})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in SIXTEEN_BIT_MODES:
        levels = np.asarray(image).astype(np.float32).clip(0, 65535)
        image = Image.fromarray((levels / 257).round().astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def center_crop_resize(image: Image.Image, size: int) -> Image.Image:
    """The largest centred square, resized to size x size with Lanczos filtering."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)


def images_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (any shape) -> float32 in [-1, 1], the generator's range."""
    return images.float().div_(127.5).sub_(1.0)


# ---------------------------------------------------------------------------------------------------------------------
# A folder of images


@dataclass
class PreparedDataset:
    """The usable images of a folder at one resolution, and what was skipped."""

    root: Path
    size: int
    images: torch.Tensor  # (N, 3, size, size) uint8, memory-mapped from the cache file
    files: list[str]  # relative paths, in the order of `images`
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    fingerprint: str = ""
    cache_path: Path | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def digest(self) -> str:
        """sha256 of what training sees (the file names and their decoded pixels), unlike `fingerprint` (the cache's
        key, from file sizes and modification times) the same in every clone of the same data."""
        content = hashlib.sha256(json.dumps(self.files).encode())
        content.update(self.images.contiguous().numpy())  # hashed in place: no second copy of the dataset
        return content.hexdigest()

    def skip_report(self, max_names: int = 10) -> str:
        """One line naming the skipped files and why ('' when none was skipped)."""
        if not self.skipped:
            return ""
        shown = ", ".join(f"{name} ({reason})" for name, reason in self.skipped[:max_names])
        more = f" and {len(self.skipped) - max_names} more" if len(self.skipped) > max_names else ""
        return f"skipped {len(self.skipped)} of {len(self.skipped) + len(self)} files: {shown}{more}"


def list_image_files(root: Path) -> list[Path]:
    """Every png/jpg/jpeg/webp file below root (any case, recursively), sorted by relative path."""
    return sorted(
        (path for path in root.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()),
        key=lambda path: path.relative_to(root).as_posix(),
    )


def dataset_fingerprint(root: Path, files: list[Path], size: int) -> str:
    """Changes whenever a file is added, removed, renamed, rewritten or touched, or the resolution changes."""
    entries = []
    for path in files:
        stat = path.stat()
        entries.append([path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
    key = json.dumps([PREPROCESSING_VERSION, size, entries], separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()


def prepare_dataset(
    root: str | os.PathLike,
    size: int,
    cache_dir: str | os.PathLike,
    *,
    include: Callable[[Path], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> PreparedDataset:
    """Decode the folder's images at `size` (or reuse the cache of an unchanged folder) and return them.

    `include(path)` selects files (e.g. a training split); `on_progress(done, total)` is called as images are decoded.
    A folder without one usable image is a ZooError.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ZooError(f"{root}: no such folder; --data takes a folder of png/jpg/jpeg/webp images")
    files = [path for path in list_image_files(root) if include is None or include(path)]
    fingerprint = dataset_fingerprint(root, files, size)
    cache_path = Path(cache_dir) / f"images-{size}px-{fingerprint[:24]}.safetensors"
    if cache_path.is_file():
        return _load_cache(cache_path, root, size, fingerprint)

    images = torch.empty((len(files), 3, size, size), dtype=torch.uint8)
    kept, skipped = [], []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # Pillow decodes and resizes without the GIL
        for done, (path, result) in enumerate(zip(files, pool.map(lambda path: _decode(path, size), files)), 1):
            name = path.relative_to(root).as_posix()
            if isinstance(result, str):
                skipped.append((name, result))
            else:
                images[len(kept)] = torch.from_numpy(result)
                kept.append(name)
            if on_progress:
                on_progress(done, len(files))
    if not kept:
        raise ZooError(f"{root}: no usable image (png/jpg/jpeg/webp) found; {_why_empty(files, skipped)}")
    dataset = PreparedDataset(root, size, images[: len(kept)], kept, skipped, fingerprint, cache_path)
    _save_cache(cache_path, dataset)
    return dataset


def model_input_pixels(path: str | os.PathLike, size: int) -> np.ndarray:
    """(3, size, size) uint8 pixels of an image file as models see it; UnusableImage if it cannot be used."""
    image = load_image_rgb(path)
    if min(image.size) < MIN_SIDE:
        raise UnusableImage(path, f"too small ({image.width}x{image.height} px; at least {MIN_SIDE} px a side)")
    return np.asarray(center_crop_resize(image, size)).transpose(2, 0, 1).copy()


def _decode(path: Path, size: int) -> np.ndarray | str:
    """(3, size, size) uint8 pixels, or the reason the file is skipped."""
    try:
        return model_input_pixels(path, size)
    except UnusableImage as error:
        return error.reason


def _why_empty(files: list[Path], skipped: list[tuple[str, str]]) -> str:
    if not files:
        return "the folder (searched recursively) holds no file with one of these extensions"
    name, reason = skipped[0]
    return f"all {len(skipped)} candidate files were skipped (e.g. {name}: {reason}); check the folder's contents"


def _save_cache(path: Path, dataset: PreparedDataset) -> None:
    description = {"files": dataset.files, "skipped": dataset.skipped, "fingerprint": dataset.fingerprint}
    with atomic_path(path) as tmp:
        save_file({"images": dataset.images.contiguous()}, str(tmp), metadata={"zoo.dataset": json.dumps(description)})


def _load_cache(path: Path, root: Path, size: int, fingerprint: str) -> PreparedDataset:
    """Memory-map the cached images: a safetensors file is an 8-byte header length, a JSON header, then raw data."""
    with open(path, "rb") as handle:
        (header_length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_length))
    entry = header["images"]
    start, _ = entry["data_offsets"]
    # Copy-on-write mapping: writable as numpy requires for torch.from_numpy, yet the file is never modified.
    pixels = np.memmap(path, dtype=np.uint8, mode="c", offset=8 + header_length + start, shape=tuple(entry["shape"]))
    description = json.loads(header["__metadata__"]["zoo.dataset"])
    skipped = [(name, reason) for name, reason in description["skipped"]]
    return PreparedDataset(root, size, torch.from_numpy(pixels), description["files"], skipped, fingerprint, path)


# ---------------------------------------------------------------------------------------------------------------------
# Seeded sampling


def seeded_generator(*keys: int | str, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator whose seed is a hash of `keys` (e.g. seed, step, purpose): independent streams, no state."""
    digest = hashlib.sha256(repr(keys).encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class EpochSampler:
    """The dataset indices each step trains on, a pure function of (seed, step).

    Epoch e is a random permutation of the dataset drawn from (seed, e); the global batch of step t is items
    [t*B, (t+1)*B) of the epochs laid end to end, so every image is seen once per epoch even when B does not divide N.
    Rank r of W keeps items r, r+W, r+2W, ... of the global batch (a strided split: see training.BatchRandom).
    """

    def __init__(self, n_images: int, global_batch: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n_images, self.global_batch, self.seed = n_images, global_batch, seed
        self.rank, self.world_size = rank, world_size
        self._epoch, self._permutation = -1, torch.empty(0, dtype=torch.long)

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            generator = seeded_generator(self.seed, "epoch", epoch)
            self._epoch, self._permutation = epoch, torch.randperm(self.n_images, generator=generator)
        return self._permutation

    def global_indices(self, step: int) -> torch.Tensor:
        position, end = step * self.global_batch, (step + 1) * self.global_batch
        parts = []
        while position < end:
            epoch, offset = divmod(position, self.n_images)
            take = min(self.n_images - offset, end - position)
            parts.append(self.permutation(epoch)[offset : offset + take])
            position += take
        return torch.cat(parts)

    def indices(self, step: int) -> torch.Tensor:
        """This rank's share of step `step`'s global batch."""
        return self.global_indices(step)[self.rank :: self.world_size]


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
