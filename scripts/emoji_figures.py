"""The paper's figures, made on the embedded emoji family from held-out test emoji (docs/results.md).

    python scripts/emoji_figures.py [--out results] [--steps 500] [--ablation twemoji,fluent-3d]

- fig1-multi-domain.png (the paper's Fig. 1): held-out noto emoji, their reconstruction by emoji-noto, and their
  translations into every other style, each above the true counterpart (the same emoji as that style draws it);
- fig4-multi-modal.png (Fig. 4): one input in every style with five random appearance codes on the last layers;
- fig5-reference.png (Fig. 5): inputs with the appearance of held-out images of one style;
- fig7-ablation-STYLE.png (Fig. 7): the same z through the base, FC-FT-LS (l=1), FC-FT, FT-LS (l=1) and FT, for
  each style whose FT model is installed (scripts/build-emoji-zoo.sh --ablation);
- with --distilled, instead: the same three pictures made by the family's default method, emoji-noto-translator (one
  forward pass, nothing inverted; `docs/inversion.md`): fig1-distilled.png (inputs, translations above the true
  counterparts), fig4-distilled.png (five random appearance codes per style), fig5-distilled.png (three references of
  fluent-3d, their appearance codes from emoji-noto-encoder);
- fig8-layer-swap.png (Fig. 8): held-out inputs translated with every swap level the model has (l = 0, 1, 2 at
  32 px; 0 to 3 at 64 px), by weight swap (the paper's) and by feature swap (the authors' code): the picture docs/transformation.md
  refers to.
"""

from __future__ import annotations

import argparse
import csv
import functools
from pathlib import Path

import torch
from zoo_plugins.emoji import DATA

from zoo import load
from zoo.distance import swap_levels
from zoo.evaluation import held_out_inputs
from zoo.images import labelled_grid, load_images, model_provenance, save_image
from zoo.inversion import InversionSettings, invert, invert_in_batches
from zoo.registry import Registry
from zoo.sampling import sample_latents
from zoo.swap import level_resolutions, weight_swap
from zoo.translation import (
    Renderer,
    TranslationOptions,
    translate,
    translate_multimodal,
    translate_with_reference,
    translation_options,
)

BASE = "emoji-noto"
STYLES = ["emoji-twemoji", "emoji-openmoji", "emoji-fluent-flat", "emoji-fluent-color", "emoji-fluent-3d"]


def short(name: str) -> str:
    return name.removeprefix("emoji-")


@functools.cache
def emoji_names() -> dict[str, str]:
    """File stem -> a readable name: the short name, and the skin tone where there is one."""
    with open(DATA / "manifest.csv", newline="", encoding="utf-8") as handle:
        return {row["unified"]: " ".join(filter(None, [row["short_name"], row["skin_tone"]])) for row in csv.DictReader(handle)}


def label(path: Path) -> str:
    return emoji_names().get(path.stem, path.stem)


def truth(style: str, image: Path, size: int) -> torch.Tensor:
    """The same emoji as `style` draws it, at the models' resolution `size`."""
    return load_images([DATA / short(style) / image.name], size)[0]


def multi_domain(models, inputs, images, inverted) -> object:
    rows, labels = [], []
    for index, path in enumerate(inputs):
        renders = [translate(Renderer(models[BASE].generator, models[s].generator, translation_options(s)), inverted.latents[index : index + 1],
                             "const")[0] for s in STYLES]  # fmt: skip
        rows.append([images[index], inverted.reconstructions[index], *renders])
        rows.append([None, None, *(truth(style, path, images.shape[-1]) for style in STYLES)])
        labels += [label(path), "true answer"]
    return labelled_grid(rows, labels, ["input", "noto\nreconstruction", *map(short, STYLES)])


def multi_modal(models, inverted) -> object:
    rows = []
    for style in STYLES:
        renderer = Renderer(models[BASE].generator, models[style].generator, translation_options(style))
        rows.append(list(translate_multimodal(renderer, inverted.latents[:1], "const", 5)[0]))
    return labelled_grid(rows, list(map(short, STYLES)), [f"appearance {i + 1}" for i in range(5)])


def reference_guided(models, inputs, images, inverted, settings, style="emoji-fluent-3d") -> object:
    references = inputs[3:6]
    reference_images = torch.stack([truth(style, path, images.shape[-1]) for path in references])
    reference_latents = invert(models[style], reference_images, settings).latents
    renderer = Renderer(models[BASE].generator, models[style].generator, translation_options(style))
    rows = [[None, *reference_images]]
    for index in range(3):
        content = inverted.latents[index : index + 1]
        rows.append([images[index], *(translate_with_reference(renderer, content, "const", latent[None])[0] for latent in reference_latents)])
    return labelled_grid(rows, [f"{short(style)} references", *map(label, inputs[:3])],
                         ["input", *(f"ref: {label(path)}" for path in references)])  # fmt: skip


@torch.no_grad()
def ablation(models, style: str, ft_name: str) -> object:
    base, fc_ft, ft = models[BASE].generator, models[style].generator, load(ft_name).generator
    variants = {
        "base": base,
        "FC-FT-LS l=1": weight_swap(base, fc_ft, level_resolutions(1)),
        "FC-FT": fc_ft,
        "FT-LS l=1": weight_swap(base, ft, level_resolutions(1)),
        "FT": ft,
    }
    z = sample_latents(base, 6, seed=1)
    columns = [variant(z, truncation=0.7)[0] for variant in variants.values()]
    rows = [[images[index] for images in columns] for index in range(len(z))]
    return labelled_grid(rows, [f"z {index}" for index in range(len(z))], list(variants))


def layer_swap(models, inputs, images, inverted, style="emoji-twemoji") -> object:
    levels = swap_levels(models[style].generator.config.size)  # l = 1, 2 at 32 px; 1, 2, 3 at 64 px
    settings = [("weights", 0)] + [(mode, level) for mode in ("weights", "features") for level in levels]
    columns = []
    for mode, level in settings:
        renderer = Renderer(models[BASE].generator, models[style].generator, TranslationOptions(swap=level, swap_mode=mode))
        columns.append(translate(renderer, inverted.latents, "const"))
    rows = [[images[index], *(column[index] for column in columns), truth(style, path, images.shape[-1])] for index, path in enumerate(inputs)]
    labels = [f"{mode}\nl={level}" if level else "no swap\nl=0" for mode, level in settings]
    return labelled_grid(rows, [label(path) for path in inputs], ["input", *labels, f"true\n{short(style)}"])


def distilled_figures(models, inputs, images, style="emoji-fluent-3d") -> dict[str, object]:
    """Figs. 1, 4 and 5 made by the family's distilled translator (the default of `zoo translate` for emoji)."""
    from zoo.translation import random_appearance
    from zoo.translator import default_translator, load_translator, reference_appearance, translate_feed_forward

    base = models[BASE]
    translator = load_translator(default_translator(base, STYLES[0]), base=base)
    outputs = {target: translate_feed_forward(translator, images, target) for target in STYLES}
    rows, labels = [], []
    for index, path in enumerate(inputs):
        rows += [[images[index], *(outputs[target][index] for target in STYLES)],
                 [None, *(truth(target, path, images.shape[-1]) for target in STYLES)]]
        labels += [label(path), "true answer"]
    fig1 = labelled_grid(rows, labels, ["input", *map(short, STYLES)])
    codes = {target: random_appearance(models[target].generator, 5, translation_options(target)) for target in STYLES}
    fig4 = labelled_grid([[translate_feed_forward(translator, images[:1], target, code[None])[0] for code in codes[target]] for target in STYLES],
                         list(map(short, STYLES)), [f"appearance {i + 1}" for i in range(5)])  # fmt: skip
    references = inputs[3:6]
    reference_images = torch.stack([truth(style, path, images.shape[-1]) for path in references])
    appearance = reference_appearance(None, base, reference_images, translator.config.appearance_layers)
    rows = [[None, *reference_images]] + [[images[index], *(translate_feed_forward(translator, images[index : index + 1], style, code[None])[0]
                                                           for code in appearance)] for index in range(3)]  # fmt: skip
    fig5 = labelled_grid(rows, [f"{short(style)} references", *map(label, inputs[:3])], ["input", *(f"ref: {label(path)}" for path in references)])
    return {"fig1-distilled": fig1, "fig4-distilled": fig4, "fig5-distilled": fig5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--ablation", default="twemoji,fluent-3d", help="Styles whose FT model (emoji-STYLE-ft) to show.")
    parser.add_argument("--distilled", action="store_true", help="Only Figs. 1, 4, 5 by the distilled translator (seconds).")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    test = held_out_inputs(BASE, STYLES[0])
    inputs = test[:: len(test) // 6][:6]  # six held-out emoji spread over the test set
    models = {name: load(name) for name in [BASE, *STYLES]}
    images = load_images(inputs, models[BASE].info.config.size)
    if args.distilled:
        for name, figure in distilled_figures(models, inputs, images).items():
            figure.save(args.out / f"{name}.png")
            print(f"wrote {args.out / name}.png")
        return
    settings = InversionSettings(steps=args.steps)
    inverted = invert_in_batches(models[BASE], images, settings)
    figures = {
        "fig1-multi-domain": multi_domain(models, inputs, images, inverted),
        "fig4-multi-modal": multi_modal(models, inverted),
        "fig5-reference": reference_guided(models, inputs, images, inverted, settings),
        "fig8-layer-swap": layer_swap(models, inputs, images, inverted),
    }
    installed = Registry().domains()
    for style in args.ablation.split(","):
        if f"emoji-{style}-ft" in installed:
            figures[f"fig7-ablation-{style}"] = ablation(models, f"emoji-{style}", f"emoji-{style}-ft")
    provenance = {"command": "scripts/emoji_figures.py", "models": [model_provenance(model) for model in models.values()],
                  "method": settings.method, "steps": settings.steps, "inversion_seed": 0}  # fmt: skip
    for name, figure in figures.items():
        save_image(figure, args.out / f"{name}.png", force=True, provenance={**provenance, "figure": name})
        print(f"wrote {args.out / name}.png")


if __name__ == "__main__":
    main()
