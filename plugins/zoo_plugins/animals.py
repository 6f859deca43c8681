"""The cat family of the paper: AFHQ cats as the base, fine-tuned into dogs and wild animals.

NVIDIA's afhqdog.pkl and afhqwild.pkl were trained from scratch, so their mapping networks differ from the cat
model's: they are not members of this family (import them as families of their own). dog and wild are made here by
fine-tuning `cat` with its mapping frozen.
"""

from zoo import hookimpl
from zoo.domains import DataSource, DomainSpec, Recipe, Weights

AFHQ = dict(
    url="https://github.com/clovaai/stargan-v2",
    license="CC BY-NC 4.0",
    preprocessing="AFHQ's 512 px crops as published",
    alignment="center-crop",  # a user's photo: the animal's face centred, no detector
    min_images=1000,
)
FINE_TUNE = dict(base="cat", iters=12_000, batch=16, freeze_fc=True, swap_layers=2, appearance_layers=6, truncation=0.7)


@hookimpl
def register_domains(register):
    register(DomainSpec(
        name="cat",
        family="cat",
        description="Cat faces (AFHQ cat), the base of the cat family",
        resolution=512,
        data=DataSource(description="AFHQ cat: 5,653 cat faces (Choi et al., StarGAN v2)", **AFHQ),
        recipe=Recipe(base=None, iters=100_000, batch=16, augment="ada"),
        weights=Weights(
            urls=("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/afhqcat.pkl",),
            format="nvidia-ada-pkl",
            license="NVIDIA Source Code License-NC (non-commercial)",
            notes="AFHQ cat 512 px, trained from scratch with ADA (stylegan2-ada-pytorch); NVIDIA publishes no "
                  "checksum for it, so `zoo pull cat` needs --sha256 HEX or --allow-unpinned",
        ),
    ))
    register(DomainSpec(
        name="dog",
        family="cat",
        description="Dog faces (AFHQ dog)",
        resolution=512,
        data=DataSource(description="AFHQ dog: 5,239 dog faces", **AFHQ),
        recipe=Recipe(**FINE_TUNE),
    ))
    register(DomainSpec(
        name="wild",
        family="cat",
        description="Wild animal faces (AFHQ wild: lions, tigers, foxes, wolves, ...)",
        resolution=512,
        data=DataSource(description="AFHQ wild: 5,238 wild animal faces", **AFHQ),
        recipe=Recipe(**FINE_TUNE),
    ))
