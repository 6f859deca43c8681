"""The work behind `zoo serve`, without the web: which models and examples there are, one translation as the page asks
for it (invert, render every chosen target, PNGs with their provenance), and a family's distance matrix.

Everything goes through the Python API (`zoo.translation`, `zoo.inversion`, `zoo.translator`, `zoo.distance`); the
method is the targets' recipe's (`resolve_method`, as `zoo translate --method auto`): the family's distilled translator
for the emoji, an inversion for a domain without a recipe.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from .. import __version__
from ..checkpoint import ZooModel
from ..demo import counterpart, demo_metric, held_out
from ..distance import distance_matrix, heatmap, load_named
from ..errors import ZooError
from ..images import load_images, png_text, to_pil
from ..inversion import InversionSettings, invert, invert_in_batches
from ..plugins import registered_domains
from ..registry import Registry, load
from ..translation import (
    Renderer,
    check_same_family,
    family_members,
    output_path,
    render_rows,
    resolve_method,
    translation_options,
)
from ..translator import Translator, default_translator, distilled_rows, load_translator, reference_appearance

MAX_UPLOAD_BYTES = 8 << 20  # one image file as uploaded
MAX_UPLOAD_PIXELS = 4096 * 4096  # refused before its pixels are decoded (the CLI's own bomb check still applies)
MAX_STYLES = 8  # appearance codes per target in one request: a page's row, not a batch job
EXAMPLES = 12  # held-out images offered per source domain
DISTANCE_SAMPLES = 128  # shared z per model for the family's distance matrix

Progress = Callable[[dict], None]


@dataclass
class Upload:
    """An image as the browser sent it: the file's name (for output names and the true counterpart) and its bytes."""

    name: str
    data: bytes


@dataclass
class Order:
    """One translation as the page asks for it, checked (`Studio.check_order`) before it waits for its models."""

    source: str
    renderers: dict[str, Renderer]  # per target, layer-swapped as asked (None: the target's recipe)
    image: torch.Tensor  # (1, 3, H, W) in [-1, 1], decoded like the CLI's inputs
    name: str  # the input's file name
    styles: int = 0
    reference: torch.Tensor | None = None  # (1, 3, H, W): a target-domain image lending its appearance

    @property
    def targets(self) -> list[str]:
        return list(self.renderers)

    @property
    def models(self) -> list[str]:
        return [self.source, *self.targets]


@dataclass
class Picture:
    """One image of a result: what it shows, its file name and its PNG bytes."""

    label: str
    file: str
    png: bytes = field(repr=False)


@dataclass
class Translation:
    """What one order made: the input as the model sees it, its reconstruction (None when nothing was inverted), and
    per target its outputs and, when the target's data draws the same subject, the true counterpart."""

    input: Picture
    reconstruction: Picture | None
    outputs: dict[str, list[Picture]]
    truths: dict[str, Picture]
    method: str
    seconds: float = 0.0

    def pictures(self) -> list[Picture]:
        inputs = [self.input] + ([self.reconstruction] if self.reconstruction else [])
        return [*inputs, *(p for row in self.outputs.values() for p in row), *self.truths.values()]


def safe_stem(name: str) -> str:
    """A file stem safe in any output name: letters, digits, '-' and '_' of the uploaded name, at most 60."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name).stem).strip("-")[:60]
    return stem or "image"


def png_bytes(image: torch.Tensor, provenance: dict | None = None) -> bytes:
    """One (3, H, W) image in [-1, 1] as PNG bytes holding `provenance` as every PNG zoo writes does (`zoo info`)."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG", pnginfo=png_text(provenance or {}))
    return buffer.getvalue()


def decode_upload(upload: Upload, size: int) -> torch.Tensor:
    """(1, 3, size, size): the upload decoded with the CLI's checks (zoo.images.load_images), after a size check on
    its bytes and its header's pixel count; any problem is a one-line ZooError naming the uploaded file."""
    if not upload.data:
        raise ZooError(f"{upload.name}: empty file; choose an image")
    if len(upload.data) > MAX_UPLOAD_BYTES:
        raise ZooError(f"{upload.name}: {len(upload.data) / 2**20:.1f} MiB; uploads are limited to {MAX_UPLOAD_BYTES >> 20} MiB")
    with tempfile.TemporaryDirectory(prefix="zoo-serve-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(upload.data)
        try:
            check_pixels(path)
            return load_images([path], size)
        except ZooError as error:
            raise ZooError(str(error).replace(str(path), upload.name)) from None


def check_pixels(path: Path) -> None:
    """Refuse an image of more than MAX_UPLOAD_PIXELS from its header alone; an unreadable header is left to the
    decoder, which says why."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return
    if width * height > MAX_UPLOAD_PIXELS:
        raise ZooError(f"{path}: {width}x{height} px; uploads are limited to {MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels, "
                       "so scale it down first")  # fmt: skip


def every_percent(progress: Progress, stage: str) -> Callable[[int, int], None]:
    """A step callback passing on about one step in a hundred (and the last), not hundreds of events per second."""

    def step(done: int, total: int) -> None:
        if done == total or done % max(1, total // 100) == 0:
            progress({"stage": stage, "done": done, "total": total})

    return step


class Studio:
    """The installed models, loaded once each, and the work the page asks for. Callers run one order at a time per
    model (zoo/serve/app.py queues them); the model cache itself is thread-safe."""

    def __init__(self, inversion: InversionSettings | None = None, device: str | torch.device = "cpu"):
        self.inversion = inversion  # None: the targets' recipe's method (resolve_method)
        self.device = device
        self.loaded: dict[tuple[str, str], ZooModel] = {}
        self.translators: dict[tuple[str, str], Translator] = {}  # (source sha256, translator name)
        self.loading = threading.Lock()
        self.example_lists: dict[tuple[str, tuple[str, ...]], list[Path]] = {}

    # -- what there is --------------------------------------------------------------------------------------------

    def catalog(self) -> dict:
        """Every installed model with the members of its family it can translate into, and its shipped examples."""
        sources = {}
        bases_first = sorted(Registry().domains().items(), key=lambda item: (item[1]["lineage"].get("base") is not None, item[0]))
        for name, entry in bases_first:
            targets = family_members(name)
            if targets:
                sources[name] = {"family": entry.family, "resolution": entry.resolution, "targets": targets,
                                 "examples": [path.name for path in self.examples(name)]}  # fmt: skip
        return {"sources": sources, "limits": {"upload_bytes": MAX_UPLOAD_BYTES, "upload_pixels": MAX_UPLOAD_PIXELS,
                                               "styles": MAX_STYLES}, "version": __version__}  # fmt: skip

    def examples(self, source: str) -> list[Path]:
        """Held-out images of `source`'s bundled data that none of its family's declared domains trained on (the emoji
        test split); none for a source without bundled data. Kept per source and family (finding them reads every
        image name of the bundled data: 0.7 s for the emoji)."""
        specs = registered_domains()
        targets = tuple(name for name in family_members(source) if name in specs and specs[name].data.include)
        if source not in specs or specs[source].data.bundled is None or not targets:
            return []
        key = (source, targets)
        if key not in self.example_lists:
            try:
                self.example_lists[key] = held_out(specs[source], [specs[name] for name in targets], EXAMPLES)
            except ZooError:
                self.example_lists[key] = []
        return self.example_lists[key]

    def example(self, source: str, name: str) -> Path:
        """One of `source`'s examples by file name (only names it offers, so no path is taken from a request)."""
        for path in self.examples(source):
            if path.name == name:
                return path
        raise ZooError(f"example {name!r}: not one of {source}'s examples; pick one the page lists")

    def model(self, name: str) -> ZooModel:
        entry = Registry().get(name)
        if entry is None:
            raise ZooError(f"model {name!r} is not installed; see `zoo list --installed`")
        key = (name, entry.sha256)
        with self.loading:
            if key not in self.loaded:
                self.loaded = {k: v for k, v in self.loaded.items() if k[0] != name}  # a reinstalled model replaces its old copy
                self.loaded[key] = load(name, device=self.device)
            return self.loaded[key]

    def translator(self, source: str, targets: list[str]) -> tuple[str, Translator]:
        """The family's distilled translator from `source` (its name and itself), loaded once, checked to know every
        one of `targets`."""
        model = self.model(source)
        name = default_translator(model, targets[0])
        key = (Registry().get(source).sha256, name)
        with self.loading:
            if key not in self.translators:
                self.translators[key] = load_translator(name, base=model)
            translator = self.translators[key]
        for target in targets:
            translator.target_index(target)
        return name, translator

    def preload(self) -> None:
        """Load every model the page offers and each source's distilled translator, so that the first translation
        does not wait for them; one that fails to load is left for its first request to report."""
        for name, offer in self.catalog()["sources"].items():
            with contextlib.suppress(ZooError):
                self.model(name)
                self.translator(name, offer["targets"][:1])

    # -- one order ------------------------------------------------------------------------------------------------

    def check_order(self, source: str, targets: list[str], upload: Upload | None, example: str | None,
                    swap: int | None = None, styles: int = 0, reference: Upload | None = None) -> Order:  # fmt: skip
        """Everything that can be wrong with a request, before it waits for a model: names, numbers, images."""
        members = family_members(source)
        if not targets:
            raise ZooError("choose at least one target domain")
        strangers = [name for name in targets if name not in members]
        if strangers:
            raise ZooError(f"{', '.join(strangers)}: not in {source}'s family; choose from {', '.join(members) or 'none'}")
        if not 0 <= styles <= MAX_STYLES:
            raise ZooError(f"appearance codes: {styles}; choose 0 to {MAX_STYLES}")
        if reference is not None and len(targets) != 1:
            raise ZooError("a reference image lends its appearance to one target domain; choose a single target")
        source_model = self.model(source)
        renderers = {}
        for target in targets:  # checks that the swap level and appearance layers fit the target's size
            check_same_family(source_model, self.model(target))
            options = translation_options(target, swap=swap)
            renderers[target] = Renderer(source_model.generator, self.model(target).generator, options)
        size = source_model.info.config.size
        if (upload is None) == (example is None):
            raise ZooError("upload an image or pick an example (one or the other)")
        if upload is not None:
            image, name = decode_upload(upload, size), upload.name
        else:
            path = self.example(source, example)
            image, name = load_images([path], size), path.name
        reference_image = decode_upload(reference, self.model(targets[0]).info.config.size) if reference else None
        return Order(source, renderers, image, Path(name).name, styles, reference_image)

    def translate(self, order: Order, progress: Progress = lambda event: None) -> Translation:
        """Translate the input into every target by the targets' recipe's method (or the server's `inversion`): the
        family's distilled translator in one pass, or an inversion with the source rendered by every target; PNGs with
        their provenance (`png_bytes`)."""
        settings = resolve_method(self.inversion, order.targets)
        stem = safe_stem(order.name)
        common = {"input": order.name, "source": order.source, "source_sha256": Registry().get(order.source).sha256,
                  "method": settings.method, "zoo": __version__}  # fmt: skip
        result = Translation(Picture("input", f"{stem}-input.png", png_bytes(order.image[0])), None, {}, {}, settings.method)
        if settings.method == "distilled":
            name, translator = self.translator(order.source, order.targets)
            common["translator"] = name
            reference = None
            if order.reference is not None:
                reference = reference_appearance(None, self.model(order.source), order.reference, translator.config.appearance_layers)
            rows = {}
            for index, target in enumerate(order.targets):
                progress({"stage": "rendering", "target": target, "done": index, "total": len(order.targets)})
                rows[target] = distilled_rows(translator, order.image, target, order.renderers[target], order.styles, reference)
        else:
            progress({"stage": "inverting", "done": 0, "total": 1})
            inverted = invert_in_batches(self.model(order.source), order.image, settings, on_step=every_percent(progress, "inverting"))
            result.reconstruction = Picture(f"{order.source} (reconstruction)", f"{stem}-{order.source}-reconstruction.png",
                                            png_bytes(inverted.reconstructions[0], common))  # fmt: skip
            rows = {}
            for index, target in enumerate(order.targets):
                progress({"stage": "rendering", "target": target, "done": index, "total": len(order.targets)})
                reference = invert(self.model(target), order.reference, settings).latents if order.reference is not None else None
                rows[target] = render_rows(order.renderers[target], inverted.latents, inverted.noise_spec(), order.styles, reference)
        specs = registered_domains()
        for target in order.targets:
            result.outputs[target] = self.pictures(order, target, rows[target][0].clamp(-1, 1), common, stem)
            truth = counterpart(specs[target], Path(order.name)) if target in specs else None
            if truth is not None:
                size = self.model(target).info.config.size
                result.truths[target] = Picture(f"{target} (true counterpart)", f"{stem}-{target}-truth.png",
                                                png_bytes(load_images([truth], size)[0]))  # fmt: skip
        return result

    def pictures(self, order: Order, name: str, row: torch.Tensor, common: dict, stem: str) -> list[Picture]:
        """The target's outputs as PNGs: the translation, each appearance code's, the reference-guided one."""
        options = order.renderers[name].options
        variants = [("", name, {})]
        variants += [(f"-style{k + 1}", f"{name}, appearance {k + 1}", {"appearance_code": k + 1, "seed": options.seed,
                      "truncation": options.truncation, "appearance_layers": options.appearance_layers})
                     for k in range(order.styles)]  # fmt: skip
        if order.reference is not None:
            variants.append(("-ref", f"{name}, reference-guided", {"reference": True, "appearance_layers": options.appearance_layers}))
        pictures = []
        for image, (suffix, label, extra) in zip(row, variants):
            provenance = {**common, "target": name, "target_sha256": Registry().get(name).sha256, "swap": options.swap,
                          "swap_mode": options.swap_mode, **extra}  # fmt: skip
            file = output_path(Path(), stem, order.source, name, suffix).name
            pictures.append(Picture(label, file, png_bytes(image, provenance)))
        return pictures

    # -- the family's distances -----------------------------------------------------------------------------------

    def distances(self, source: str) -> dict:
        """The distance matrix (the paper's Eq. 1) of `source` and the members of its family: names, values, label, and
        the heatmap as a PNG data URL."""
        names = [source, *family_members(source)]
        result = distance_matrix([load_named(name, self.device) for name in sorted(names)], metric=demo_metric("auto"),
                                 samples=DISTANCE_SAMPLES, seed=0)  # fmt: skip
        buffer = io.BytesIO()
        heatmap(result).save(buffer, format="PNG")
        return {"names": result.names, "matrix": result.matrix.tolist(), "label": result.label, "samples": result.samples,
                "heatmap": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()}  # fmt: skip
