"""Feed-forward translation: a family's layer-swap translations distilled into one image-to-image network (issue 17).

After Viazovetskyi et al. 2020 ("StyleGAN2 Distillation for Feed-forward Image Manipulation"). The base's mapping
gives w = f(z); the base renders G_base(w) (the input) and every target of the family renders the translation of the
same w at its recipe's swap level (the target): with probability one half its content code on every row (the plain
translation), else with an appearance code w_a = f(z_a) (truncated as `zoo translate` does) on its last
`appearance_layers` rows (a multi-modal output). `Translator`, a small U-Net at the family's resolution (skip
connections carry the layout), learns input -> target with L1 + (1 - SSIM), conditioned on the target by an embedding
and on the appearance code (whitened, or a learnt 'none' vector for the plain translation) by FiLM modulation of its
decoder. The inputs are blurred or sharpened and noised at random: real images are crisper or softer than the
base's samples (the synthetic-to-real gap).

Translating is then one forward pass: `--styles` feeds random appearance codes, `--reference` the appearance rows of
the reference's latent from the family's encoder (zoo/encoder.py).

Files: `checkpoints/NAME.safetensors` (metadata: config, base, base sha256, family, targets, lineage), registered in
registry.toml's `[translators.NAME]` table (zoo/companions.py, shared with encoders). Runs: `<zoo home>/runs/NAME/`
(resumable; the loop is zoo/companion_training.py's, shared with encoders).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .checkpoint import ZooModel
from .companion_training import CompanionRun, CompanionTraining, RunSettings, train_companion
from .companions import Companion, install_companion, installable_name, installed, load_companion, matching
from .errors import ZooError
from .files import sha256_file
from .metrics import ssim
from .registry import TRANSLATORS, Registry, load
from .rendering import Renderer, check_same_family, family_members, random_appearance, translation_options
from .training.loop import ProgressCallback

TRANSLATOR_FORMAT = "zoo-translator"
LATENT_SAMPLES = 10_000

# ---------------------------------------------------------------------------------------------------------------------
# The network


def default_widths(size: int) -> list[int]:
    """Channels per U-Net level, from `size` px down to 4 px: 1024 / resolution, kept within 16..128. At 32 px (32, 64,
    128, 128) and at 64 px (16, 32, 64, 128, 128): 1.34 M parameters, a 5.4 MB file, either way; at 64 px the extra
    level keeps the 4 px bottleneck and costs a third of the step time of 32 channels at full resolution."""
    return [max(16, min(128, 1024 // (size >> level))) for level in range(size.bit_length() - 2)]


@dataclass
class TranslatorConfig:
    targets: list[str] = field(default_factory=list)  # the domains it translates into, in embedding order
    image_size: int = 32
    style_dim: int = 128
    widths: list[int] | None = None  # None: default_widths(image_size)
    condition_dim: int = 128
    appearance_layers: int = 4  # rows of W+ the appearance code took in training

    def __post_init__(self):
        self.widths = list(self.widths or default_widths(self.image_size))


class Modulated(nn.Module):
    """conv 3x3 -> instance norm -> FiLM by the condition -> leaky ReLU."""

    def __init__(self, channels_in: int, channels_out: int, condition_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.norm = nn.InstanceNorm2d(channels_out, affine=False)
        self.film = nn.Linear(condition_dim, 2 * channels_out)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(condition)[:, :, None, None].chunk(2, dim=1)
        return F.leaky_relu(self.norm(self.conv(x)) * (1 + scale) + shift, 0.2)


def plain_block(channels_in: int, channels_out: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1), nn.LeakyReLU(0.2),
                         nn.Conv2d(channels_out, channels_out, 3, padding=1), nn.LeakyReLU(0.2))  # fmt: skip


class Translator(nn.Module):
    """(B, 3, H, W) images of the base's domain in [-1, 1], target indices (B,), appearance codes (B, D) or None ->
    (B, 3, H, W) translations in [-1, 1]."""

    def __init__(self, config: TranslatorConfig):
        super().__init__()
        self.config = config
        widths, condition = config.widths, config.condition_dim
        if not config.targets:
            raise ZooError("a translator needs at least one target domain")
        self.targets = nn.Embedding(len(config.targets), condition)
        self.appearance = nn.Sequential(nn.Linear(config.style_dim, condition), nn.LeakyReLU(0.2), nn.Linear(condition, condition))
        self.no_appearance = nn.Parameter(torch.zeros(condition))
        self.condition = nn.Sequential(nn.Linear(2 * condition, condition), nn.LeakyReLU(0.2))
        self.stem = plain_block(3, widths[0])
        self.down = nn.ModuleList(plain_block(a, b, stride=2) for a, b in zip(widths, widths[1:]))
        self.middle = Modulated(widths[-1], widths[-1], condition)
        self.up = nn.ModuleList(Modulated(b + a, a, condition) for a, b in zip(widths[-2::-1], widths[:0:-1]))
        self.refine = Modulated(widths[0], widths[0], condition)
        self.out = nn.Conv2d(widths[0] + 3, 3, 1)
        self.register_buffer("latent_mean", torch.zeros(config.style_dim))
        self.register_buffer("latent_spread", torch.ones(config.style_dim))

    def target_index(self, name: str) -> int:
        if name not in self.config.targets:
            raise ZooError(f"--to {name}: this translator knows {', '.join(self.config.targets)}; train one with that target")
        return self.config.targets.index(name)

    def conditioning(self, targets: torch.Tensor, appearance: torch.Tensor | None) -> torch.Tensor:
        if appearance is None:
            code = self.no_appearance.expand(targets.shape[0], -1)
        else:
            code = self.appearance((appearance - self.latent_mean) / self.latent_spread)
        return self.condition(torch.cat([self.targets(targets), code], dim=1))

    def forward(self, images: torch.Tensor, targets: torch.Tensor, appearance: torch.Tensor | None = None,
                has_appearance: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """`has_appearance` (B,) bool mixes plain rows (False) and rows with an appearance code in one batch."""
        condition = self.conditioning(targets, appearance)
        if has_appearance is not None:
            plain = self.conditioning(targets, None)
            condition = torch.where(has_appearance[:, None], condition, plain)
        skips, x = [], self.stem(images)
        for block in self.down:
            skips.append(x)
            x = block(x)
        x = self.middle(x, condition)
        for block, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = block(torch.cat([x, skip], dim=1), condition)
        x = self.refine(x, condition)
        return torch.tanh(self.out(torch.cat([x, images], dim=1)))


def build_translator(base: ZooModel, targets: list[str], widths: list[int] | None = None, appearance_layers: int = 4) -> Translator:
    generator = base.generator
    config = TranslatorConfig(targets=list(targets), image_size=generator.config.size, style_dim=generator.config.style_dim,
                              widths=widths, appearance_layers=appearance_layers)  # fmt: skip
    translator = Translator(config)
    with torch.no_grad():
        z = torch.randn(LATENT_SAMPLES, generator.config.style_dim, generator=torch.Generator().manual_seed(0))
        w = generator.mapping(z)
        translator.latent_mean.copy_(w.mean(0))
        translator.latent_spread.copy_(w.std(0).clamp_min(1e-6))
    return translator


# ---------------------------------------------------------------------------------------------------------------------
# Training pairs


@dataclass
class TranslatorTrainConfig(RunSettings):
    iters: int = 5000
    batch: int = 32
    lr: float = 1e-3
    appearance_fraction: float = 0.5  # of the pairs whose target has an appearance code
    appearance_truncation: float = 0.7  # of the sampled appearance codes, as `zoo translate` draws them
    input_augment: float = 0.5  # fraction of inputs blurred or sharpened and noised
    snapshot_every: int = 250
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        for name in ("appearance_fraction", "input_augment", "appearance_truncation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ZooError(f"{name} must be in [0, 1]")


@dataclass
class PairBatch:
    inputs: torch.Tensor  # G_base(w), augmented
    outputs: torch.Tensor  # the target's translation
    targets: torch.Tensor  # (B,) target indices
    appearance: torch.Tensor  # (B, D) appearance codes (unused rows where has_appearance is False)
    has_appearance: torch.Tensor  # (B,) bool


class PairSampler:
    """Pairs (base sample, its translation) for a step, drawn from (seed, step) alone: a resumed run sees what an
    unbroken one would."""

    def __init__(self, base: ZooModel, targets: dict[str, ZooModel], config: TranslatorTrainConfig, appearance_layers: int):
        self.base, self.config, self.rows = base.generator, config, appearance_layers
        self.renderers = [Renderer(base.generator, model.generator,
                                   translation_options(name, appearance_layers=appearance_layers)) for name, model in targets.items()]  # fmt: skip

    @torch.no_grad()
    def __call__(self, step: int) -> PairBatch:
        random = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step)
        batch, dim, n_latent = self.config.batch, self.base.config.style_dim, self.base.n_latent
        w = self.base.mapping(torch.randn(batch, dim, generator=random))
        appearance = self.base.truncate(self.base.mapping(torch.randn(batch, dim, generator=random)), self.config.appearance_truncation)
        has_appearance = torch.rand(batch, generator=random) < self.config.appearance_fraction
        targets = torch.randint(len(self.renderers), (batch,), generator=random)
        content = w[:, None].expand(-1, n_latent, -1)
        latents = content.clone()
        latents[has_appearance, n_latent - self.rows :] = appearance[has_appearance, None]
        outputs = torch.empty(batch, 3, self.base.config.size, self.base.config.size)
        for index, renderer in enumerate(self.renderers):
            rows = targets == index
            if rows.any():
                outputs[rows] = renderer.render_batch(latents[rows], "const")
        inputs = augment_inputs(self.base.synthesis(content), self.config.input_augment, random)
        return PairBatch(inputs, outputs.clamp(-1, 1), targets, appearance, has_appearance)


def augment_inputs(images: torch.Tensor, fraction: float, random: torch.Generator) -> torch.Tensor:
    """Blur or sharpen a `fraction` of the images by a random amount (unsharp masking with a 3x3 box), plus a little
    pixel noise: the gap between the base's samples and real images is mostly one of sharpness."""
    chosen = (torch.rand(images.shape[0], generator=random) < fraction).float()[:, None, None, None]
    amount = (torch.rand(images.shape[0], 1, 1, 1, generator=random) * 2 - 1) * chosen  # -1 blur .. 1 sharpen
    blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    noise = torch.randn(images.shape, generator=random) * 0.02 * chosen
    return (images + amount * (images - blurred) + noise).clamp(-1, 1)


def translator_loss(translator: Translator, pairs: PairBatch) -> dict[str, torch.Tensor]:
    predicted = translator(pairs.inputs, pairs.targets, pairs.appearance, pairs.has_appearance)
    l1 = (predicted - pairs.outputs).abs().mean()
    structure = (1 - ssim(predicted, pairs.outputs)).mean()
    return {"loss": l1 + structure, "l1": l1, "ssim": structure}


# ---------------------------------------------------------------------------------------------------------------------
# Training


def learning_rate(config: TranslatorTrainConfig, step: int) -> float:
    """config.lr, decayed along a cosine over the last half of the run."""
    progress = max(0.0, step / config.iters - 0.5) * 2
    return config.lr * 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())


def train_translator(base: ZooModel, targets: dict[str, ZooModel], name: str, config: TranslatorTrainConfig, *,
                     appearance_layers: int = 4, resume: bool = False, on_step: ProgressCallback | None = None) -> CompanionRun:  # fmt: skip
    """Distil base -> each target into one Translator (snapshots in <zoo home>/runs/NAME; `resume` continues)."""
    for model in [base, *targets.values()]:
        model.generator.eval().requires_grad_(False)
    sampler = PairSampler(base, targets, config, appearance_layers)
    training = CompanionTraining(
        kind="translator", base=base, config=config,
        build=lambda: build_translator(base, list(targets), appearance_layers=appearance_layers),
        losses=lambda translator, step: translator_loss(translator, sampler(step)),
        identity={"targets": list(targets), "appearance_layers": appearance_layers}, identity_words="base, targets or settings",
        betas=(0.9, 0.99), learning_rate=lambda step: learning_rate(config, step),
    )  # fmt: skip
    return train_companion(name, training, resume=resume, on_step=on_step)


def family_targets(base: str, registry: Registry | None = None) -> list[str]:
    """The installed models fine-tuned in `base`'s family (sharing its mapping network)."""
    return family_members(base, registry)


def train_and_install_translator(base: str, targets: list[str] | None, name: str | None, config: TranslatorTrainConfig, *,
                                 appearance_layers: int = 4, resume: bool = False, force: bool = False, command: str = "",
                                 on_step: ProgressCallback | None = None) -> tuple[CompanionRun, dict]:  # fmt: skip
    """`zoo train-translator`: distil BASE -> every target (default: the family's installed models) into NAME."""
    registry = Registry()
    name = installable_name(TRANSLATORS, "translator", base, name, force=force, registry=registry)
    targets = targets or family_targets(base, registry)
    if not targets:
        raise ZooError(f"{base} has no installed family members to translate into; add one with `zoo add-domain`")
    base_model = load(base)
    models = {target: load(target) for target in targets}
    for model in models.values():
        check_same_family(base_model, model)
    run = train_translator(base_model, models, name, config, appearance_layers=appearance_layers, resume=resume, on_step=on_step)
    lineage = {"transform": "distillation", "base": base, "targets": targets,
               "target_sha256": {target: sha256_file(model.info.path) for target, model in models.items()},
               **run.lineage(command, appearance_layers=appearance_layers)}  # fmt: skip
    companion = Companion(TRANSLATORS, "translator", TRANSLATOR_FORMAT, run.network, asdict(run.network.config))
    entry = install_companion(companion, name, base, lineage=lineage, extra={"targets": targets}, force=force, registry=registry)
    return run, entry


# ---------------------------------------------------------------------------------------------------------------------
# Loading and translating


def translator_for(base: ZooModel, target: str, registry: Registry | None = None) -> str | None:
    """An installed translator made for this base checkpoint (same sha256) that knows `target`, or None."""
    names = matching(TRANSLATORS, sha256_file(base.info.path), registry)
    known = [name for name in names if target in (installed(TRANSLATORS, registry)[name].targets or [])]
    return known[0] if known else None


def load_translator(name_or_path: str | Path, base: ZooModel | None = None, registry: Registry | None = None) -> Translator:
    """An installed translator by name (sha256 checked) or a file; with `base`, it must have been trained for that base."""
    return load_companion(TRANSLATORS, name_or_path, TRANSLATOR_FORMAT, lambda config: Translator(TranslatorConfig(**config)),
                          base=base, kind="translator", command="train-translator", registry=registry)  # fmt: skip


def default_translator(base: ZooModel, target: str) -> str:
    name = translator_for(base, target)
    if name is None:
        raise ZooError(f"no translator from {base.info.domain} to {target} is installed; train one with "
                       f"`zoo train-translator {base.info.domain}` or use --method bounded")  # fmt: skip
    return name


@torch.no_grad()
def translate_feed_forward(translator: Translator, images: torch.Tensor, target: str, appearance: torch.Tensor | None = None,
                           batch_size: int = 256) -> torch.Tensor:  # fmt: skip
    """(B, 3, H, W) translations of `images` into `target`; `appearance` (B, D) or (1, D) codes, or None (plain)."""
    index = torch.full((images.shape[0],), translator.target_index(target), dtype=torch.long)
    if appearance is not None:
        appearance = appearance.expand(images.shape[0], -1)
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        chunks.append(translator(images[rows], index[rows], None if appearance is None else appearance[rows]))
    return torch.cat(chunks)


def multimodal_feed_forward(translator: Translator, images: torch.Tensor, target: str, codes: torch.Tensor) -> torch.Tensor:
    """(B, styles, 3, H, W): each input with each of the appearance `codes` (styles, D)."""
    return torch.stack([translate_feed_forward(translator, images, target, code[None]) for code in codes], dim=1)


def family_translator(source: ZooModel, targets: list[str], name: str | None = None) -> Translator:
    """The translator to use from `source` into every one of `targets`: `name`, or the installed one made for it."""
    translator = load_translator(name or default_translator(source, targets[0]), base=source)
    for target in targets:
        translator.target_index(target)
    return translator


def distilled_rows(translator: Translator, images: torch.Tensor, target: str, renderer: Renderer, styles: int,
                   reference: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """(B, columns, 3, H, W) as translation.render_rows: the translation, `styles` outputs with random appearance codes
    (drawn as `zoo translate` draws them for the target), then the reference-guided output."""
    columns = [translate_feed_forward(translator, images, target)[:, None]]
    if styles:
        codes = random_appearance(renderer.target, styles, renderer.options)
        columns.append(multimodal_feed_forward(translator, images, target, codes))
    if reference is not None:
        columns.append(translate_feed_forward(translator, images, target, reference)[:, None])
    return torch.cat(columns, dim=1).cpu()


def reference_appearance(encoder_name: str | None, base: ZooModel, reference: torch.Tensor, rows: int) -> torch.Tensor:
    """The appearance code of a reference image: the mean of the last `rows` rows of the family encoder's latent."""
    from .encoder import default_encoder, encode, load_encoder

    encoder = load_encoder(encoder_name or default_encoder(base), base=base)
    return encode(encoder, reference)[:, -rows:].mean(1)
