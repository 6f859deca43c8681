"""The figures of docs/photos.md: a photo's detected face, its FFHQ crop, a translation and the translation pasted back.

    zoo translate --from emoji-noto --to emoji-twemoji PHOTO --align on --paste-back --out OUT
    python scripts/photo_figures.py PHOTO OUT docs/photos

Detection and alignment are redone here (they are deterministic); the translation and its pasted-back photo are the
files `zoo translate` wrote into OUT.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from zoo.align import align_ffhq, ffhq_quad
from zoo.data import load_image_rgb
from zoo.detect import load_detector


def detection_figure(photo: Image.Image, faces) -> Image.Image:
    """The photo with each face's box (green), five landmarks (red) and the FFHQ square it is cut along (yellow)."""
    figure = photo.copy()
    draw = ImageDraw.Draw(figure)
    for face in faces:
        draw.rectangle(face.box, outline=(0, 255, 0), width=2)
        quad = [tuple(corner) for corner in ffhq_quad(face.landmarks)]
        draw.polygon(quad, outline=(255, 220, 0), width=2)
        for x, y in face.landmarks:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(255, 0, 0))
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("translated", type=Path, help="the --out folder of `zoo translate ... --paste-back`")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    photo = load_image_rgb(args.photo)
    faces = load_detector()(np.array(photo))
    detection_figure(photo, faces).save(args.out / "1-detected.jpg", quality=88)
    align_ffhq(photo, faces[0], 256)[0].save(args.out / "2-aligned.png")
    translation = next(path for path in args.translated.glob(f"{args.photo.stem}-*.png") if not path.stem.endswith("-pasted"))
    Image.open(translation).resize((256, 256), Image.Resampling.NEAREST).save(args.out / "3-translated.png")
    Image.open(translation.with_name(f"{translation.stem}-pasted.png")).save(args.out / "4-pasted.jpg", quality=88)


if __name__ == "__main__":
    main()
