"""Face detection with five landmarks: MTCNN (Zhang et al. 2016) in plain PyTorch, and detectors from plugins.

MTCNN is a cascade of three small networks. P-Net slides over an image pyramid and proposes 12 px windows; R-Net
(24 px crops) and O-Net (48 px crops) each reject most of the remaining candidates and refine their boxes, and O-Net
also places five landmarks. Boxes are merged by non-maximum suppression after every stage. The weights are the
original authors', as ported by David Sandberg and Timothy Esler (all MIT; zoo/weights/LICENSE-mtcnn.md), converted
once by scripts/convert_mtcnn.py. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .errors import ZooError
from .specs import Detector, DetectorSpec, Face

WEIGHTS = Path(__file__).parent / "weights" / "mtcnn.safetensors"
DEFAULT_DETECTOR = "mtcnn"
MIN_FACE = 20  # px: the smallest face searched for (of the image as detected, see MAX_SIDE)
PYRAMID_FACTOR = 0.709  # scale step of the pyramid (about 1/sqrt(2), as the authors use)
THRESHOLDS = (0.6, 0.7, 0.7)  # face probability each stage must reach
MAX_SIDE = 1024  # larger photos are detected at this size: faces too small for it are too small to translate


# ---------------------------------------------------------------------------------------------------------------------
# The three networks


class Stage(nn.Module):
    """Convolutions with PReLU (and max-pooling after the listed ones), then the heads: face score, box offsets and,
    for O-Net, landmarks. P-Net is fully convolutional; R-Net and O-Net end in a dense layer."""

    def __init__(self, convs: list[tuple[int, int, int, int]], dense: int | None, landmarks: bool):
        super().__init__()
        self.pools = {}
        for index, (c_in, c_out, kernel, pool) in enumerate(convs, 1):
            setattr(self, f"conv{index}", nn.Conv2d(c_in, c_out, kernel))
            setattr(self, f"prelu{index}", nn.PReLU(c_out))
            self.pools[index] = pool
        self.depth = len(convs)
        channels = convs[-1][1]
        self.dense_layer = dense is not None
        if dense is not None:
            self.dense = nn.Linear(dense[0], dense[1])
            setattr(self, f"prelu{self.depth + 1}", nn.PReLU(dense[1]))
            channels = dense[1]
        head = (lambda n: nn.Linear(channels, n)) if self.dense_layer else (lambda n: nn.Conv2d(channels, n, 1))
        self.score, self.box = head(2), head(4)
        self.landmarks = head(10) if landmarks else None

    def forward(self, x: torch.Tensor):
        for index in range(1, self.depth + 1):
            x = getattr(self, f"prelu{index}")(getattr(self, f"conv{index}")(x))
            kernel, stride = self.pools[index]
            if kernel:
                x = F.max_pool2d(x, kernel, stride, ceil_mode=True)
        if self.dense_layer:  # the ported weights flatten width-major (the original Caffe models saw images transposed)
            x = getattr(self, f"prelu{self.depth + 1}")(self.dense(x.permute(0, 3, 2, 1).flatten(1)))
        outputs = [F.softmax(self.score(x), dim=1)[:, 1], self.box(x)]
        return outputs + ([self.landmarks(x)] if self.landmarks is not None else [])


NO_POOL, POOL_2, POOL_3 = (0, 0), (2, 2), (3, 2)


def mtcnn_networks() -> tuple[Stage, Stage, Stage]:
    pnet = Stage([(3, 10, 3, POOL_2), (10, 16, 3, NO_POOL), (16, 32, 3, NO_POOL)], None, False)
    rnet = Stage([(3, 28, 3, POOL_3), (28, 48, 3, POOL_3), (48, 64, 2, NO_POOL)], (576, 128), False)
    onet = Stage([(3, 32, 3, POOL_3), (32, 64, 3, POOL_3), (64, 64, 3, POOL_2), (64, 128, 2, NO_POOL)], (1152, 256), True)
    return pnet, rnet, onet


# ---------------------------------------------------------------------------------------------------------------------
# The cascade


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, by_smaller: bool = False) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, best first. Overlap is intersection over union, or
    over the smaller box's area (`by_smaller`, O-Net's final merge, which also removes a box inside another)."""
    order = scores.argsort(descending=True)
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep = []
    while order.numel():
        best, rest = order[0], order[1:]
        keep.append(best)
        top_left = torch.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = torch.minimum(boxes[best, 2:4], boxes[rest, 2:4])
        inter = (bottom_right - top_left + 1).clamp(min=0).prod(dim=1)
        base = torch.minimum(areas[best], areas[rest]) if by_smaller else areas[best] + areas[rest] - inter
        order = rest[inter / base <= threshold]
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long)


def square(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes grown to squares around their centres (the next stage's input is square)."""
    size = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    centre = (boxes[:, :2] + boxes[:, 2:4]) / 2
    return torch.cat([centre - size[:, None] / 2, centre + size[:, None] / 2], dim=1)


def regress(boxes: torch.Tensor, offsets: torch.Tensor, extra: int = 1) -> torch.Tensor:
    """Boxes moved by a network's offsets (fractions of the box's size)."""
    size = (boxes[:, 2:4] - boxes[:, :2] + extra).repeat(1, 2)
    return boxes[:, :4] + offsets * size


def crops(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, size, size) patches of `image` (3, H, W) under integer `boxes` (1-based, inclusive, as the weights were
    trained), each output pixel the mean of bilinear samples over its cell (an area resampling; zero, i.e. grey, outside)."""
    from torchvision.ops import roi_align  # on use: importing torchvision's ops costs every zoo command about 1 s

    corners = boxes[:, :4].trunc()
    regions = torch.cat([torch.zeros(len(boxes), 1), corners[:, :2] - 1, corners[:, 2:]], dim=1)
    return roi_align(image[None], regions, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """0-255 pixels as the networks take them; resampling is linear, so the pyramid and crops are taken afterwards."""
    return (pixels - 127.5) / 128.0


@contextlib.contextmanager
def one_thread():
    """Torch on one CPU thread for a while. MTCNN's layers are too small to share out: a second thread gains little
    (docs/benchmarks.md), and on a busy machine waiting for it made detection several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class MTCNN:
    """The detector: `MTCNN()(image)` -> faces. Networks are loaded once (see `load_detector`)."""

    def __init__(self, weights: Path = WEIGHTS):
        self.pnet, self.rnet, self.onet = mtcnn_networks()
        tensors = load_file(str(weights))
        for name, network in (("pnet", self.pnet), ("rnet", self.rnet), ("onet", self.onet)):
            network.load_state_dict({key.split(".", 1)[1]: value for key, value in tensors.items() if key.startswith(name + ".")})
            network.eval().requires_grad_(False)

    def __call__(self, image: np.ndarray) -> list[Face]:
        with one_thread(), torch.inference_mode():
            return self.detect(image)

    def detect(self, image: np.ndarray) -> list[Face]:
        pixels = normalise(torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float())
        shrink = max(max(pixels.shape[1:]) / MAX_SIDE, 1.0)
        if shrink > 1:
            size = (round(pixels.shape[1] / shrink), round(pixels.shape[2] / shrink))
            pixels = F.interpolate(pixels[None], size=size, mode="area")[0]
        boxes = self.propose(pixels)
        if len(boxes):
            boxes = self.refine(pixels, boxes)
        if not len(boxes):
            return []
        boxes, scores, landmarks = self.output(pixels, boxes)
        boxes[:, :4] -= 1  # 1-based (the networks' convention) -> pixel centres at 0
        return [Face(tuple((box * shrink).tolist()), float(score), (points * shrink).numpy())
                for box, score, points in zip(boxes[:, :4], scores, landmarks)]  # fmt: skip

    def pyramid(self, height: int, width: int) -> list[float]:
        scales, scale = [], 12.0 / MIN_FACE
        while min(height, width) * scale >= 12:
            scales.append(scale)
            scale *= PYRAMID_FACTOR
        return scales

    def propose(self, pixels: torch.Tensor) -> torch.Tensor:
        """P-Net over the pyramid: (N, 5) squared boxes (x0, y0, x1, y1, score) of candidate faces."""
        height, width = pixels.shape[1:]
        found = []
        for scale in self.pyramid(height, width):
            resized = F.interpolate(pixels[None], size=(int(height * scale + 1), int(width * scale + 1)), mode="area")
            score, offsets = self.pnet(resized)
            rows, columns = torch.nonzero(score[0] >= THRESHOLDS[0], as_tuple=True)
            if not len(rows):
                continue
            cells = torch.stack([columns, rows], dim=1).float()  # P-Net's output cells: stride 2, 12 px windows
            boxes = torch.cat([((2 * cells + 1) / scale).floor(), ((2 * cells + 12) / scale).floor()], dim=1)
            candidates = torch.cat([boxes, score[0, rows, columns, None], offsets[0, :, rows, columns].T], dim=1)
            found.append(candidates[nms(candidates[:, :4], candidates[:, 4], 0.5)])
        if not found:
            return torch.zeros(0, 5)
        candidates = torch.cat(found)
        candidates = candidates[nms(candidates[:, :4], candidates[:, 4], 0.7)]
        return torch.cat([square(regress(candidates, candidates[:, 5:9], extra=0)), candidates[:, 4:5]], dim=1)

    def refine(self, pixels: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """R-Net on 24 px crops: the candidates it keeps, merged, moved and squared."""
        score, offsets = self.rnet(crops(pixels, boxes, 24))
        passed = score > THRESHOLDS[1]
        boxes, score, offsets = boxes[passed], score[passed], offsets[passed]
        keep = nms(boxes, score, 0.7)
        return square(regress(boxes[keep], offsets[keep]))

    def output(self, pixels: torch.Tensor, boxes: torch.Tensor):
        """O-Net on 48 px crops: final boxes with scores, and five landmarks each."""
        score, offsets, points = self.onet(crops(pixels, boxes, 48))
        passed = score > THRESHOLDS[2]
        boxes, score, offsets, points = boxes[passed], score[passed], offsets[passed], points[passed]
        size = boxes[:, 2:4] - boxes[:, :2] + 1
        landmarks = torch.stack([boxes[:, None, 0] + size[:, None, 0] * points[:, :5],
                                 boxes[:, None, 1] + size[:, None, 1] * points[:, 5:]], dim=2) - 1  # fmt: skip
        boxes = regress(boxes, offsets)
        keep = nms(boxes, score, 0.7, by_smaller=True)
        return boxes[keep], score[keep], landmarks[keep]


# ---------------------------------------------------------------------------------------------------------------------
# Choosing a detector


def builtin_detectors() -> dict[str, DetectorSpec]:
    return {DEFAULT_DETECTOR: DetectorSpec(DEFAULT_DETECTOR, "MTCNN (Zhang et al. 2016), shipped weights, CPU", MTCNN, "zoo")}


def available_detectors() -> dict[str, DetectorSpec]:
    """The built-in MTCNN and every detector a plugin registers (a plugin cannot replace the built-in)."""
    from .plugins import registered_detectors

    return registered_detectors() | builtin_detectors()


@lru_cache(maxsize=4)
def load_detector(name: str = DEFAULT_DETECTOR) -> Detector:
    detectors = available_detectors()
    if name not in detectors:
        raise ZooError(f"--detector {name!r}: unknown; use one of {', '.join(sorted(detectors))} (plugins add more)")
    return detectors[name].load()
