"""Does a reference-guided translation take its appearance from the reference? (issue 17, bar 3)

For the held-out noto emoji -> STYLE with the family's distilled translator: each input is translated plainly and
with the appearance of a reference (one of R training images of the style, assigned in turn); the colour statistics
of an image are its per-channel mean and standard deviation over the non-white pixels (the emoji, not its
background). Prints the mean distance of those statistics to the reference's, for the plain and the reference-guided
outputs, and for the reference-guided output of another reference (a control: how far any guided output is).
Also whether `--styles` outputs keep the content: the mean 1 - SSIM of the input to the plain output and to outputs
with random appearance codes (drawn as `zoo translate --styles` draws them).

    python scripts/reference_colour.py --styles twemoji,fluent-3d --references 10 --json docs/results/reference-colour.json
"""

from __future__ import annotations

import argparse
import json
import random

import torch

from zoo.evaluation import held_out_inputs
from zoo.images import load_images
from zoo.metrics import ssim
from zoo.plugins import registered_domains
from zoo.registry import load
from zoo.translation import random_appearance, translation_options
from zoo.translator import default_translator, load_translator, reference_appearance, translate_feed_forward


def colour_statistics(images: torch.Tensor) -> torch.Tensor:
    """(B, 6): per-channel mean and standard deviation of the pixels that are not near-white."""
    pixels = images.flatten(2)  # (B, 3, H*W)
    mask = (pixels.min(dim=1, keepdim=True).values < 0.9).float()  # [-1, 1] pixels: white is 1
    count = mask.sum(-1).clamp_min(1)
    mean = (pixels * mask).sum(-1) / count
    std = (((pixels - mean[..., None]) ** 2 * mask).sum(-1) / count).sqrt()
    return torch.cat([mean, std], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--styles", default="twemoji,openmoji,fluent-flat,fluent-color,fluent-3d")
    parser.add_argument("--references", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args()
    source = load("emoji-noto")
    results = {}
    for style in args.styles.split(","):
        target = f"emoji-{style}"
        translator = load_translator(default_translator(source, target), base=source)
        files = held_out_inputs("emoji-noto", target)
        images = load_images(files, source.info.config.size)
        spec = registered_domains()[target].data
        pool = sorted(path for path in spec.bundled.glob("*.png") if spec.include is None or spec.include(path))
        references = load_images(random.Random(args.seed).sample(pool, args.references), source.info.config.size)
        assigned = references[torch.arange(len(files)) % args.references]
        other = references[(torch.arange(len(files)) + 1) % args.references]
        rows = translator.config.appearance_layers
        plain = translate_feed_forward(translator, images, target)
        guided = translate_feed_forward(translator, images, target, reference_appearance(None, source, assigned, rows))
        elsewhere = translate_feed_forward(translator, images, target, reference_appearance(None, source, other, rows))
        wanted = colour_statistics(assigned)
        distance = {name: float((colour_statistics(outputs) - wanted).norm(dim=1).mean())
                    for name, outputs in (("plain", plain), ("reference-guided", guided), ("guided by another reference", elsewhere))}  # fmt: skip
        nearer = float(((colour_statistics(guided) - wanted).norm(dim=1) < (colour_statistics(plain) - wanted).norm(dim=1)).float().mean())
        codes = random_appearance(load(target).generator, 4, translation_options(target)).cpu()
        styled = torch.stack([translate_feed_forward(translator, images, target, code[None]) for code in codes])
        content = {"1 - SSIM input to plain output": float((1 - ssim(plain, images)).mean()),
                   "1 - SSIM input to style outputs": float(torch.stack([(1 - ssim(out, images)).mean() for out in styled]).mean())}
        results[style] = {**distance, "guided nearer than plain (fraction of inputs)": nearer, **content, "inputs": len(files)}
        print(style, json.dumps(results[style]), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"references per style": args.references, "seed": args.seed, "styles": results}, handle, indent=1)


if __name__ == "__main__":
    main()
