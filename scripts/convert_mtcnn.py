"""Convert MTCNN's weights from the facenet-pytorch 2.6.0 wheel into zoo/weights/mtcnn.safetensors (run once).

    pip download facenet-pytorch==2.6.0 --no-deps -d /tmp/fp && unzip -o -q /tmp/fp/*.whl -d /tmp/fp
    python scripts/convert_mtcnn.py /tmp/fp/facenet_pytorch/data

The three .pt files are plain state dicts: they are read with `torch.load(weights_only=True)` (no code runs) after
their sha256 is checked, renamed into zoo.detect's layout and written as one safetensors file. facenet-pytorch is not
a dependency of zoo; only its weights (MIT, see zoo/weights/LICENSE-mtcnn.md) are shipped.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch
from safetensors.torch import save_file

SOURCES = {  # file of facenet-pytorch 2.6.0's data/ folder -> its sha256
    "pnet.pt": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet.pt": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet.pt": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}
HEADS = {  # facenet-pytorch's layer names -> zoo.detect's, per network
    "pnet": {"conv4_1": "score", "conv4_2": "box"},
    "rnet": {"dense4": "dense", "dense5_1": "score", "dense5_2": "box"},
    "onet": {"dense5": "dense", "dense6_1": "score", "dense6_2": "box", "dense6_3": "landmarks"},
}
OUTPUT = Path(__file__).resolve().parents[1] / "zoo" / "weights" / "mtcnn.safetensors"


def read_checked(path: Path, sha256: str) -> dict[str, torch.Tensor]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{path}: sha256 {digest} is not facenet-pytorch 2.6.0's {sha256}; use that wheel")
    return torch.load(path, map_location="cpu", weights_only=True)


def renamed(network: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, tensor in state.items():
        layer, kind = name.split(".")
        tensors[f"{network}.{HEADS[network].get(layer, layer)}.{kind}"] = tensor.float().contiguous()
    return tensors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="facenet_pytorch/data folder of the unzipped 2.6.0 wheel")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args()
    tensors = {}
    for file_name, sha256 in SOURCES.items():
        tensors |= renamed(file_name.removesuffix(".pt"), read_checked(args.data / file_name, sha256))
    metadata = {"source": "facenet-pytorch 2.6.0 (data/pnet.pt, rnet.pt, onet.pt)", "license": "MIT",
                "attribution": "MTCNN: Zhang, Zhang, Li, Qiao 2016 (MIT); TensorFlow port: David Sandberg (MIT); "
                               "PyTorch port: Timothy Esler (MIT)"}  # fmt: skip
    save_file(tensors, str(args.out), metadata=metadata)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()})")


if __name__ == "__main__":
    main()
