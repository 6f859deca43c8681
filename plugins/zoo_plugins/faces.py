"""The face family of the paper: FFHQ faces as the base, fine-tuned into portraits, cartoons and anime.

The paper fine-tuned portrait and cartoon at 1024 px and anime at 256 px. A family shares one mapping network, so
zoo keeps the whole family at 256 px on NVIDIA's FFHQ-256 model; for 1024 px, import `ffhq.pkl` as a family of its
own (`zoo import ffhq.pkl --name face-1024`) and fine-tune from it with `--base face-1024`.
"""

from zoo import hookimpl
from zoo.domains import DataSource, DomainSpec, Recipe, Weights

ADA_PRETRAINED = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"
NVIDIA_LICENSE = "NVIDIA Source Code License-NC (non-commercial)"
FINE_TUNE = dict(base="face", batch=16, freeze_fc=True, swap_layers=2, appearance_layers=5, truncation=0.7)


@hookimpl
def register_domains(register):
    register(DomainSpec(
        name="face",
        family="face",
        description="Human faces (FFHQ), the base of the face family",
        resolution=256,
        data=DataSource(
            description="FFHQ: 70,000 aligned and cropped faces from Flickr (NVIDIA)",
            url="https://github.com/NVlabs/ffhq-dataset",
            license="images: their Flickr licences; dataset: CC BY-NC-SA 4.0",
            preprocessing="FFHQ alignment (dlib landmarks, eyes and mouth at fixed positions), resized to 256 px",
            alignment="ffhq",
            min_images=1000,
        ),
        recipe=Recipe(base=None, iters=550_000, batch=16),
        weights=Weights(
            urls=(f"{ADA_PRETRAINED}/transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl",),
            format="nvidia-ada-pkl",
            license=NVIDIA_LICENSE,
            notes="FFHQ 256 px, paper256 config (channel multiplier 1), trained without augmentation; "
                  "the closest published match to the rosinality FFHQ-256 model the paper's code used; "
                  "NVIDIA publishes no checksum for it, so `zoo pull face` needs --sha256 HEX or --allow-unpinned",
        ),
    ))
    register(DomainSpec(
        name="portrait",
        family="face",
        description="Painted and drawn portraits",
        resolution=256,
        data=DataSource(
            description="artistic portraits ('The Face of Art', Yaniv et al. 2019; the portrait set the paper cites)",
            url="https://faculty.idc.ac.il/arik/site/foa/artistic-faces-dataset.asp",
            license="research use; see the dataset's page",
            preprocessing="faces aligned like FFHQ, resized to 256 px",
            alignment="ffhq",
        ),
        recipe=Recipe(iters=20_000, **FINE_TUNE),
    ))
    register(DomainSpec(
        name="cartoon",
        family="face",
        description="Cartoon characters' faces (the Toonify data)",
        resolution=256,
        data=DataSource(
            description="cartoon faces collected by Doron Adler and Justin Pinkney for Toonify",
            url="https://www.justinpinkney.com/toonify-yourself/",
            license="not published; use faces you have the rights to",
            preprocessing="faces aligned like FFHQ, resized to 256 px",
            alignment="ffhq",
        ),
        recipe=Recipe(iters=20_000, **FINE_TUNE),
    ))
    register(DomainSpec(
        name="anime",
        family="face",
        description="Anime faces (Danbooru2018 crops)",
        resolution=256,
        data=DataSource(
            description="anime faces cropped from Danbooru2018 (gwern), 256 px",
            url="https://gwern.net/danbooru2021",
            license="images: their artists' rights; the crops are distributed for research",
            preprocessing="face crops (e.g. the 'animefaces 512x512' crop set) resized to 256 px",
            alignment="center-crop",  # drawn faces: a photo detector does not find them, the crops are centred
            min_images=1000,
        ),
        recipe=Recipe(iters=12_000, **FINE_TUNE),
    ))
