"""Image tensors <-> files. Generator images are (B, 3, H, W) floats in [-1, 1].

Every image zoo writes goes through `save_image`, which stores the image's provenance (the models that made it with
their sha256 and training data's licence, seed, method, swap level, zoo's version, ...) as a PNG text chunk that
`read_provenance` (and `zoo info IMAGE.png`) reads back.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin, UnidentifiedImageError

from . import __version__
from .data import images_to_float, list_image_files, model_input_pixels
from .errors import ZooError
from .files import atomic_path, sha256_file

MAX_BATCH = 4096  # images generated (or inverted) together
MEMORY_BUDGET_BYTES = 4 << 30  # images held in memory at once by one command (float32): refuse, do not swap or crash


def check_image_memory(what: str, count: int, size: int) -> None:
    """A ZooError naming `what` (e.g. '--n 5000') when `count` size x size images would not fit the memory budget."""
    needed = count * 3 * size * size * 4
    if needed > MEMORY_BUDGET_BYTES:
        most = MEMORY_BUDGET_BYTES // (3 * size * size * 4)
        raise ZooError(f"{what}: {count} images of {size}px need {needed / 2**30:.1f} GiB in memory at once; "
                       f"at most {most} per run, so split the work")  # fmt: skip


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> the 0-255 bytes a saved file holds (same shape, on the CPU)."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_pil(image: torch.Tensor) -> Image.Image:
    """One (3, H, W) image in [-1, 1] -> an RGB PIL image."""
    return Image.fromarray(to_uint8(image).permute(1, 2, 0).numpy(), "RGB")


def grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """Tile (B, 3, H, W) images into one (3, H', W') image on white, `nrow` per row (ceil(sqrt(B)) by default)."""
    count, channels, height, width = images.shape
    nrow = nrow or math.ceil(math.sqrt(count))
    rows = math.ceil(count / nrow)
    canvas = torch.ones(channels, rows * (height + padding) + padding, nrow * (width + padding) + padding)
    for index, image in enumerate(images.detach().float().cpu().clamp(-1, 1)):
        top = padding + (index // nrow) * (height + padding)
        left = padding + (index % nrow) * (width + padding)
        canvas[:, top : top + height, left : left + width] = image
    return canvas


def labelled_grid(
    rows: list[list[torch.Tensor | None]], row_labels: list[str], column_labels: list[str], scale: int = 2, padding: int = 4
) -> Image.Image:
    """A figure: rows of (3, H, W) images (None leaves a cell empty), each cell `scale`x enlarged, with row labels on
    the left and column labels on top, on white."""
    font = ImageFont.load_default(size=12)
    height, width = next(image for row in rows for image in row if image is not None).shape[1:]
    cell_w, cell_h = width * scale + padding, height * scale + padding
    left = round(max((font.getlength(label) for label in row_labels), default=0)) + 2 * padding
    top = 3 * padding + 12 * max((label.count("\n") + 1 for label in column_labels), default=0)
    canvas = Image.new("RGB", (left + cell_w * max(len(row) for row in rows), top + cell_h * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for column, label in enumerate(column_labels):
        draw.multiline_text((left + column * cell_w + cell_w // 2, top - padding), label, fill="black", font=font, anchor="md",
                            align="center")  # fmt: skip
    for index, (row, label) in enumerate(zip(rows, row_labels)):
        y = top + index * cell_h
        draw.text((padding, y + cell_h // 2), label, fill="black", font=font, anchor="lm")
        for column, image in enumerate(row):
            if image is not None:
                enlarged = to_pil(image).resize((width * scale, height * scale), Image.Resampling.NEAREST)
                canvas.paste(enlarged, (left + column * cell_w, y))
    return canvas


PROVENANCE_KEY = "zoo:provenance"  # the PNG text chunk holding an image's provenance as JSON


def save_image(image: torch.Tensor | Image.Image, path: str | Path, force: bool = False, provenance: dict | None = None) -> Path:
    """Save one (3, H, W) image (or a PIL figure) atomically; the format follows the suffix (png, jpg, webp). A PNG
    holds `provenance` (see `model_provenance`) and zoo's version as text metadata."""
    path = Path(path)
    if path.exists() and not force:
        raise ZooError(f"{path}: already exists; pass --force to overwrite it or choose another --out")
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ZooError(f"{path}: unknown image type {path.suffix!r}; use .png, .jpg or .webp")
    options = {"pnginfo": png_text(provenance or {})} if image_format == "PNG" else {}
    with atomic_path(path) as tmp:
        (image if isinstance(image, Image.Image) else to_pil(image)).save(tmp, format=image_format, **options)
    return path


def png_text(provenance: dict) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", f"zoo {__version__}")
    info.add_itxt(PROVENANCE_KEY, json.dumps({"zoo_version": __version__, **provenance}))
    return info


def model_provenance(model) -> dict:
    """What an image made by a loaded model (a ZooModel) records of it: name, family, file sha256, training data's
    licence (None when the model's lineage does not record one, e.g. an imported checkpoint)."""
    info = model.info
    return {"name": info.domain, "family": info.family, "sha256": cached_sha256(str(info.path)),
            "data_license": info.lineage.get("data_license")}  # fmt: skip


def cached_sha256(path: str) -> str:
    stat = os.stat(path)
    return _sha256_of_version(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _sha256_of_version(path: str, mtime_ns: int, size: int) -> str:  # one hash per file version, not per image
    return sha256_file(path)


def read_provenance(path: str | Path) -> dict | None:
    """The provenance a PNG written by zoo holds, or None for an image without it."""
    try:
        with Image.open(path) as image:
            text = getattr(image, "text", {}).get(PROVENANCE_KEY)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ZooError(f"{path}: not a readable image ({type(error).__name__}); give a PNG written by zoo") from None
    if text is None:
        return None
    try:
        provenance = json.loads(text)
    except json.JSONDecodeError:
        raise ZooError(f"{path}: its {PROVENANCE_KEY} metadata is not JSON; the file was altered after zoo wrote it") from None
    if not isinstance(provenance, dict):
        raise ZooError(f"{path}: its {PROVENANCE_KEY} metadata is not an object; the file was altered after zoo wrote it")
    return provenance


@contextlib.contextmanager
def all_or_nothing() -> Iterator[list[Path]]:
    """The list of files a run writes, to append to; if the run fails part way (a full disk, Ctrl-C), the files already
    written are removed, so a failed run leaves no output behind (one it replaced under --force stays replaced)."""
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def check_free(paths: list[Path], force: bool) -> None:
    """Refuse before any work if an output exists (without force), two inputs would write the same file, or a folder
    it goes into is a file."""
    seen = set()
    for path in paths:
        if path in seen:
            raise ZooError(f"{path}: two inputs would write this file (same file name); rename one of them")
        seen.add(path)
        if path.is_dir():
            raise ZooError(f"{path}: is a folder; choose another output path")
        if path.exists() and not force:
            raise ZooError(f"{path}: already exists; pass --force to overwrite it or choose another --out")
        blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
        if blocking is not None:
            raise ZooError(f"{blocking}: is a file, so {path} cannot be written into it; choose another --out")


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given and folders expanded to their images (png/jpg/jpeg/webp, recursively), in a stable order."""
    return [path for path, _ in named_inputs(inputs)]


def named_inputs(inputs: list[str | Path]) -> list[tuple[Path, str]]:
    """`expand_inputs`, each file with the name its outputs take: a file's stem, or for an image found in a folder its
    path under that folder without the suffix ('a/x' for folder/a/x.png), so a/x.png and b/x.png keep apart."""
    named = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = list_image_files(item)
            if not found:
                raise ZooError(f"{item}: folder holds no png/jpg/jpeg/webp image")
            named += [(path, path.relative_to(item).with_suffix("").as_posix()) for path in found]
        elif item.is_file():
            named.append((item, item.stem))
        else:
            raise ZooError(f"{item}: no such file or folder")
    return named


def load_images(paths: list[Path], size: int) -> torch.Tensor:
    """(N, 3, size, size) in [-1, 1]: each file made RGB (alpha on white), centre-cropped and resized like training
    data; an unusable file (not an image, truncated, empty, under 8 px, a decompression bomb) is a one-line ZooError."""
    check_image_memory(f"{len(paths)} input images", len(paths), size)
    return images_to_float(torch.from_numpy(np.stack([model_input_pixels(path, size) for path in paths])))
