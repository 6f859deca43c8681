"""The embedded emoji family: one domain per design style of the same 1,030 emoji, data shipped in `data/`.

`emoji-noto` is the base, trained from scratch; every other style is fine-tuned from it with the mapping frozen.
Because every emoji exists in every style, each translation has a true answer (see data/README.md, LICENSES.md).
"""

import csv
from functools import lru_cache
from pathlib import Path

from zoo import hookimpl
from zoo.domains import DataSource, DomainSpec, Recipe

DATA = Path(__file__).parent / "data"
# Trained at 32 px, downsampled from the shipped 64 px images: at 64 px a training step costs about 1.25 s on 2 CPU
# cores (0.7 s at 32 px), which puts the whole family (a base and five fine-tuned styles) out of a working day's reach.
RESOLUTION = 32
# Narrow enough to train on a laptop CPU and to ship at ~4.5 MB per model (G and D).
BASE_ARCHITECTURE = {"style_dim": 128, "n_mlp": 4, "channels": {4: 128, 8: 128, 16: 128, 32: 64}}
STYLES = {
    "noto": ("Google Noto Emoji", "Apache-2.0"),
    "twemoji": ("Twemoji (Twitter, jdecked fork)", "CC BY 4.0"),
    "openmoji": ("OpenMoji (outlined, flat colours)", "CC BY-SA 4.0: models fine-tuned on it and their images are CC BY-SA 4.0 too"),
    "fluent-flat": ("Microsoft Fluent Emoji, Flat", "MIT"),
    "fluent-color": ("Microsoft Fluent Emoji, Color (gradients)", "MIT"),
    "fluent-3d": ("Microsoft Fluent Emoji, 3D (glossy)", "MIT"),
}
# R1 weight scaled to the resolution as in StyleGAN2-ADA (gamma ~ 0.0002 * res^2 / batch, here doubled); rosinality's
# 10 is for 256 px and up, and at this size it smooths D so much that G learns blurred emoji.
R1_GAMMA = 0.025


@lru_cache(maxsize=1)
def test_emoji() -> frozenset[str]:
    """The held-out test set (docs/results.md): sort the distinct base emoji (`base_unified`, or the emoji itself when
    empty); every tenth one from index 0, with all its skin-tone variants, is a test emoji."""
    with open(DATA / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    bases = sorted({row["base_unified"] or row["unified"] for row in rows})
    test_bases = set(bases[::10])
    return frozenset(row["unified"] for row in rows if (row["base_unified"] or row["unified"]) in test_bases)


def is_training_image(path: Path) -> bool:
    return path.stem not in test_emoji()


def emoji_data(style: str, description: str, licence: str) -> DataSource:
    # The base may see every noto image (a noto image is a translation's input, never its answer); the other styles
    # never see a test emoji, so no target model has seen the answer it is scored against.
    return DataSource(
        description=f"1,030 emoji in the {description} style, 64x64 RGB on white (shipped with zoo)",
        license=f"{licence}; attribution in LICENSES.md beside the data (zoo_plugins/emoji/data)",
        layout="<style>/<unified code points>.png, the same emoji in every style (manifest.csv)",
        preprocessing="resized from 64 px to 32 px (Lanczos)",
        bundled=DATA / style,
        include=None if style == "noto" else is_training_image,
    )


@hookimpl
def register_domains(register):
    for style, (description, licence) in STYLES.items():
        if style == "noto":
            recipe = Recipe(base=None, iters=15_000, batch=16, r1_gamma=R1_GAMMA, architecture=BASE_ARCHITECTURE)
        else:
            # Translation into a style: the distilled translator (emoji-noto-translator, `zoo train-translator`),
            # below both baselines on the held-out emoji (1 - SSIM on 5 of 5 styles, L1 on 4 of 5) in one forward pass
            # (docs/results.md, Issue 17); appearance codes on the last 4 rows, the layers above the swapped 4 and 8 px.
            recipe = Recipe(base="emoji-noto", iters=2_000, batch=16, r1_gamma=R1_GAMMA, freeze_fc=True, swap_layers=1,
                            appearance_layers=4, method="distilled")  # fmt: skip
        register(DomainSpec(
            name=f"emoji-{style}",
            family="emoji",
            description=f"{description} emoji" + (", the base of the emoji family" if style == "noto" else ""),
            resolution=RESOLUTION,
            data=emoji_data(style, description, licence),
            recipe=recipe,
        ))
