"""Quick measurement of translation levers on held-out noto emoji (issue 17, step a).

For N held-out noto emoji -> STYLE: the do-nothing baseline, the colour-transfer baseline, and renderings of the
inverted latents (today's bounded inversion) through the target: plain (weight swap l), and the authors' feature
injection (base features at 8 or 16 px, the target's styles from the latent truncated toward the mean with psi).
Prints 1 - SSIM and L1 to the true counterpart and top-1 retrieval among all 1,030 images of the style.

    python scripts/lever_probe.py --styles twemoji,openmoji --count 50 --steps 300
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from zoo.baselines import colour_transfer, colour_transfer_tables
from zoo.distance import swap_levels
from zoo.evaluation import cached_features, held_out_inputs, paired_scores, plan_pairs
from zoo.images import load_images
from zoo.inversion import InversionSettings, invert_in_batches
from zoo.metrics import get_metric
from zoo.registry import load
from zoo.swap import weight_swap


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--styles", default="twemoji,openmoji")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--latents", default=None, help="a .pt file of inverted latents to reuse / write")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    base = load("emoji-noto")
    files = held_out_inputs("emoji-noto", "emoji-twemoji")[: args.count]
    size = base.info.config.size
    images = load_images(files, size)
    started = time.perf_counter()
    try:
        latents = torch.load(args.latents) if args.latents else None
    except FileNotFoundError:
        latents = None
    if latents is None or latents.shape[0] != len(files):
        latents = invert_in_batches(base, images, InversionSettings(steps=args.steps)).latents
        if args.latents:
            torch.save(latents, args.latents)
    print(f"inversion {time.perf_counter() - started:.0f}s", flush=True)
    metrics = {name: get_metric(name) for name in ("ssim", "l1")}
    results = {}
    for style in args.styles.split(","):
        target = load(f"emoji-{style}")
        pairs, _ = plan_pairs(f"emoji-{style}", None, files)
        outputs = {"do-nothing": images, "colour-transfer": colour_transfer(images, colour_transfer_tables("emoji-noto", f"emoji-{style}", size))}
        with torch.no_grad():
            g_s, g_t = base.generator, target.generator
            for level in (0, *swap_levels(size)):
                renderer = weight_swap(g_s, g_t, [2**i for i in range(2, level + 3)]) if level else g_t
                outputs[f"plain l={level}"] = renderer.synthesis(latents).clamp(-1, 1)
            for resolution in (8, 16):
                for psi in (1.0, 0.7, 0.5):
                    styles = g_t.truncate(latents, psi)
                    _, features = g_s.synthesis(latents, return_features=True)
                    rendered = g_t.synthesis(styles, replace_features={resolution: features[resolution]})
                    outputs[f"inject {resolution}px psi={psi}"] = rendered.clamp(-1, 1)
        rows = {}
        for name, images_out in outputs.items():
            row = {}
            for metric_name, metric in metrics.items():
                out_features = cached_features(metric, [images_out], "cpu")
                in_features = cached_features(metric, [images], "cpu")
                scores, _ = paired_scores(metric, pairs, out_features, in_features, size, "cpu")
                row[metric_name] = scores.distance
                row[f"top1-{metric_name}"] = scores.top1
            rows[name] = row
            print(f"{style:12s} {name:24s} 1-SSIM {row['ssim']:.4f} L1 {row['l1']:.4f} "
                  f"top1(ssim) {row['top1-ssim']:.0%} top1(l1) {row['top1-l1']:.0%}", flush=True)
        results[style] = rows
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
