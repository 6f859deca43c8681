"""The settings of one training run (`TrainConfig`), recorded in the model's lineage, and the one resolver of their
values: the command line, else the domain's recipe, else the default (`resolve_config`).

A field declared with `setting(default, FLAG, HELP)` is also a command-line option of `zoo train-base` and
`zoo add-domain` (the CLI generates it from the field); a `Recipe` field of the same name gives its recipe default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..devices import PRECISIONS, check_precision
from ..errors import SettingError
from ..sampling import SEED_RANGE

AUGMENT_MODES = ("auto", "ada", "diffaug", "off")
# Settings a resumed run may change: the length, what is written when, and mixed precision (a speed setting).
RESUMABLE_CHANGES = ("iters", "snapshot_every", "sample_every", "log_every", "amp", "precision")


def setting(default, flag: str, help: str, choices: tuple[str, ...] | None = None, **limits):
    """A TrainConfig field that the training commands take as FLAG (None there: the recipe's, else `default`); the
    option accepts only `choices` when given (listed in --help); `limits` are its bounds (min, max)."""
    return field(default=default, metadata={"flag": flag, "help": help, "choices": choices, "limits": limits})


@dataclass
class TrainConfig:
    """The hyper-parameters of one run. Its dict (`to_dict`) is the recipe recorded in the model's lineage.

    Fine-tuning (add-domain) normally sets freeze_fc=True; training a base from scratch cannot.
    """

    iters: int = setting(10_000, "--iters", "Training steps (default: the domain's recipe, else 10000).", min=1)
    batch: int = setting(16, "--batch", "Global batch, split across processes (default: recipe, else 16).", min=1)
    lr: float = setting(0.002, "--lr", "Adam learning rate (default 0.002).")
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = setting(10.0, "--r1", "R1 regularisation weight (default 10; 0 disables).")
    d_reg_every: int = 16
    g_reg_every: int = 4
    # rosinality's default, which the paper's authors kept for fine-tuning; 0 disables it and saves about a fifth of
    # G's compute (the penalty matters most for the smoothness of W, i.e. for inversion and interpolation).
    path_regularize: float = setting(2.0, "--path-regularize", "Path-length regularisation weight (default 2; 0 disables).")
    path_batch_shrink: int = 2
    mixing: float = 0.9
    ema_kimg: float = 10.0  # EMA half-life in thousands of images: rosinality's 0.5 ** (32 / 10_000) at batch 32
    ema_rampup: float = 0.05  # half-life at most this fraction of the images seen so far (ADA); 0 disables
    mirror: bool = True  # flip real images horizontally at random (rosinality's RandomHorizontalFlip)
    augment: str = setting("auto", "--augment", "auto (ADA below 5000 images), ada, diffaug or off.", AUGMENT_MODES)
    augment_auto_below: int = 5000
    ada_target: float = 0.6
    ada_interval: int = 4
    # Images (in thousands) for p to move from 0 to 1. ADA's 500 suits its runs of 5-25 Mimg; runs on a CPU see a few
    # hundred kimg, in which p could not reach the 0.3-0.8 that a small dataset needs before D has overfitted.
    ada_kimg: float = 100.0
    freeze_fc: bool = False
    freeze_d: int = 0
    snapshot_every: int = setting(1000, "--snapshot-every", "Steps between snapshots (default 1000).", min=1)
    sample_every: int = setting(1000, "--sample-every", "Steps between sample grids (default 1000).", min=1)
    log_every: int = 10
    seed: int = setting(0, "--seed", "Seed of the whole run (default 0).", **SEED_RANGE)
    amp: bool = True  # mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling)
    # Without CUDA AMP: the dtype of G's synthesis and D's blocks in the adversarial steps ('auto': bfloat16 where the
    # hardware computes it natively). Weights, styles, demodulation, losses, R1, path length, Adam and EMA stay float32.
    precision: str = setting("auto", "--precision", "auto (bfloat16 convolutions where the CPU/GPU computes them natively and "
                             "faster, else float32), float32 or bfloat16; weights and optimiser stay float32.", PRECISIONS)

    def __post_init__(self):
        self.betas = tuple(float(beta) for beta in self.betas)
        # the CLI hands over its choices as enum members, which a snapshot (torch.save) could not store
        self.augment, self.precision = str(self.augment), str(self.precision)
        if self.augment not in AUGMENT_MODES:
            raise SettingError("augment", f"{self.augment!r}: use one of {', '.join(AUGMENT_MODES)}")
        positive = ("iters", "batch", "d_reg_every", "g_reg_every", "path_batch_shrink", "ada_interval",
                    "snapshot_every", "sample_every", "log_every")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)}")
        if self.freeze_d < 0:
            raise SettingError("freeze_d", f"must be 0 or more, got {self.freeze_d}")
        check_precision(self.precision)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    def augment_mode(self, n_images: int) -> str:
        if self.augment == "auto":
            return "ada" if n_images < self.augment_auto_below else "off"
        return self.augment


def resolve_config(command_line: dict, recipe=None) -> TrainConfig:
    """Each TrainConfig field from `command_line` (None there: not given), else from the recipe's field of the same
    name (a `Recipe`, or None), else its default."""
    names = {item.name for item in fields(TrainConfig)}
    unknown = set(command_line) - names
    if unknown:
        raise TypeError(f"unknown training option(s): {sorted(unknown)}")
    values = {name: getattr(recipe, name) for name in names if hasattr(recipe, name)} if recipe is not None else {}
    values.update({name: value for name, value in command_line.items() if value is not None})
    return TrainConfig(**values)
