"""python -m zoo_sketch.make_data OUT: turn zoo's bundled noto emoji into pencil sketches in OUT."""

import sys
from pathlib import Path

from PIL import Image, ImageFilter, ImageOps

from zoo.domains import get_domain


def sketch(image: Image.Image) -> Image.Image:
    edges = image.convert("L").filter(ImageFilter.FIND_EDGES)
    return ImageOps.autocontrast(ImageOps.invert(edges)).convert("RGB")


def main(out: str) -> None:
    source = get_domain("emoji-noto").data.bundled
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.png")):
        sketch(Image.open(path)).save(target / path.name)
    print(f"wrote {len(list(target.glob('*.png')))} sketches to {target}")


if __name__ == "__main__":
    main(sys.argv[1])
