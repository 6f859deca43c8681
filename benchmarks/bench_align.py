"""Speed of detecting and aligning one photo (`zoo align`, `--align`), against baselines measured in the same run.

    python benchmarks/bench_align.py [--repeats 7] [--threads 2]

Photos: scikit-image's astronaut.png (512 x 512, one face) and the same photo enlarged to 2048 x 2048 (a phone photo's
size: detected at 1024 px, shrunk before NVIDIA's crop). Each is timed, alternating so machine load affects all alike:
- zoo: decode, MTCNN (zoo.detect), FFHQ alignment to a 256 px crop (zoo.align), as `zoo align` does;
- one-by-one crops: the same, with R-Net's and O-Net's candidate crops cut and area-resized one at a time (the
  straightforward way of MTCNN ports) instead of zoo's single roi_align call;
- centre crop: what the photo costs without alignment (decode, centre crop, resize: `--align off`).
Each figure is the median (min-max) of the repeats, a ratio taken repeat by repeat.
The bar (issue 20): zoo under 1 s per photo on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

import zoo.detect
from zoo.align import align_ffhq
from zoo.data import load_image_rgb, model_input_pixels
from zoo.detect import MTCNN

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import add_repeats, alternating, describe_run, ratio  # noqa: E402

ASTRONAUT = Path(skimage.data.__file__).parent / "astronaut.png"


def crops_one_by_one(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """The baseline's crops: each box cut out (zero outside the image) and area-resized on its own."""
    height, width = image.shape[1:]
    patches = []
    for x0, y0, x1, y1 in boxes[:, :4].trunc().long().tolist():
        x0, y0 = x0 - 1, y0 - 1
        patch = image[:, max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)]
        patch = F.pad(patch, (max(-x0, 0), max(x1 - width, 0), max(-y0, 0), max(y1 - height, 0)))
        patches.append(F.interpolate(patch[None], size=(size, size), mode="area"))
    return torch.cat(patches)


def detect_and_align(detector: MTCNN, path: Path) -> Image.Image:
    photo = load_image_rgb(path)
    face = max(detector(np.array(photo)), key=lambda found: found.area)
    return align_ffhq(photo, face, 256)[0]


def one_by_one(detector: MTCNN, path: Path) -> Image.Image:
    fast, zoo.detect.crops = zoo.detect.crops, crops_one_by_one
    try:
        return detect_and_align(detector, path)
    finally:
        zoo.detect.crops = fast


def centre_crop(detector: MTCNN, path: Path) -> np.ndarray:
    return model_input_pixels(path, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_repeats(parser, 7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/zoo-bench-align"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.folder.mkdir(parents=True, exist_ok=True)
    large = args.folder / "astronaut-2048.png"
    Image.open(ASTRONAUT).convert("RGB").resize((2048, 2048), Image.Resampling.LANCZOS).save(large)
    detector = MTCNN()
    ways = {"zoo": detect_and_align, "one-by-one crops": one_by_one, "centre crop (no alignment)": centre_crop}
    print(describe_run(args.repeats, "MTCNN on one thread whatever --threads (zoo.detect.one_thread)"))
    for path in (ASTRONAUT, large):
        for way in ways.values():  # warm-up
            way(detector, path)
        seconds, _ = alternating({name: lambda way=way: way(detector, path) for name, way in ways.items()}, args.repeats)
        print(f"{path.name} ({Image.open(path).width} px):")
        for name, spread in seconds.items():
            print(f"  {name:28s} {spread.scaled(1000).format('.1f')} ms, zoo / this {ratio(seconds['zoo'], spread).format('.2f')}")

if __name__ == "__main__":
    main()
