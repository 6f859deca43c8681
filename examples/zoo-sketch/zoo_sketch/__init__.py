"""zoo plugin: emoji drawn as pencil sketches, a member of zoo's emoji family."""

from pathlib import Path

from PIL import Image

from zoo import hookimpl
from zoo.domains import DataSource, DomainSpec, Recipe

MAX_COLOUR_SPREAD = 12  # per-pixel max-min over RGB: sketches are grey


def mostly_grey(folder: Path) -> list[str]:
    """The checker zoo runs on a user's data folder: sketch data should have no colour."""
    coloured = []
    for path in sorted(folder.rglob("*.png"))[:200]:
        pixels = Image.open(path).convert("RGB").getdata()
        if max(max(pixel) - min(pixel) for pixel in pixels) > MAX_COLOUR_SPREAD:
            coloured.append(path.name)
    return [f"{len(coloured)} images have colour (e.g. {coloured[0]}); make sketches with `python -m zoo_sketch.make_data`"] if coloured else []


@hookimpl
def register_domains(register):
    register(DomainSpec(
        name="emoji-sketch",
        family="emoji",
        description="Emoji as grey pencil sketches",
        resolution=32,
        data=DataSource(
            description="zoo's bundled noto emoji turned into edge sketches by `python -m zoo_sketch.make_data DIR`",
            license="Apache-2.0 (derived from Noto Emoji, Copyright Google LLC)",
            preprocessing="edges of the 64 px image, inverted and darkened, saved as grey PNG",
            min_images=500,
            checker=mostly_grey,
        ),
        recipe=Recipe(base="emoji-noto", iters=2_000, batch=16, freeze_fc=True, freeze_d=1, swap_layers=1, appearance_layers=2),
    ))
