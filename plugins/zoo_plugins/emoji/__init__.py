"""The embedded emoji family: one domain per design style of the same 1,030 emoji, data shipped in `data/`.

`emoji-noto` is the base, trained from scratch; every other style is fine-tuned from it with the mapping frozen.
Because every emoji exists in every style, each translation has a true answer (see data/README.md, LICENSES.md).
"""

from pathlib import Path

from zoo import hookimpl
from zoo.domains import DataSource, DomainSpec, Recipe

DATA = Path(__file__).parent / "data"
RESOLUTION = 64
# Narrow enough to train on a laptop CPU (about 0.35 s per batch-16 step on 2 cores) and to ship at ~4.5 MB per model.
BASE_ARCHITECTURE = {"style_dim": 128, "n_mlp": 4, "channels": {4: 128, 8: 128, 16: 128, 32: 64, 64: 32}}
STYLES = {
    "noto": ("Google Noto Emoji", "Apache-2.0"),
    "twemoji": ("Twemoji (Twitter, jdecked fork)", "CC BY 4.0"),
    "openmoji": ("OpenMoji (outlined, flat colours)", "CC BY-SA 4.0: models fine-tuned on it and their images are CC BY-SA 4.0 too"),
    "fluent-flat": ("Microsoft Fluent Emoji, Flat", "MIT"),
    "fluent-color": ("Microsoft Fluent Emoji, Color (gradients)", "MIT"),
    "fluent-3d": ("Microsoft Fluent Emoji, 3D (glossy)", "MIT"),
}


def emoji_data(style: str, description: str, licence: str) -> DataSource:
    return DataSource(
        description=f"1,030 emoji in the {description} style, 64x64 RGB on white (shipped with zoo)",
        license=f"{licence}; attribution in {DATA / 'LICENSES.md'}",
        layout="<style>/<unified code points>.png, the same emoji in every style (manifest.csv)",
        preprocessing="used at their native 64 px",
        bundled=DATA / style,
    )


@hookimpl
def register_domains(register):
    for style, (description, licence) in STYLES.items():
        if style == "noto":
            recipe = Recipe(base=None, iters=20_000, batch=16, architecture=BASE_ARCHITECTURE)
        else:
            recipe = Recipe(base="emoji-noto", iters=3_000, batch=16, freeze_fc=True, swap_layers=1, appearance_layers=2)
        register(DomainSpec(
            name=f"emoji-{style}",
            family="emoji",
            description=f"{description} emoji" + (", the base of the emoji family" if style == "noto" else ""),
            resolution=RESOLUTION,
            data=emoji_data(style, description, licence),
            recipe=recipe,
        ))
