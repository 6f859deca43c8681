"""Photos -> the crops a domain's model was trained on, and back.

FFHQ alignment (the face family) follows NVIDIA's `recreate_aligned_images` (NVlabs/ffhq-dataset, download_ffhq.py)
step by step, from five landmarks instead of dlib's 68: an oriented square ("quad") from the eye-to-eye and
eye-to-mouth vectors; shrink a photo much larger than the output; crop around the quad with a border; when the quad
leaves the photo, reflect-pad it and blur the padding towards its median colour; sample the quad at 4x the output
size and resize down. The centre crop (the animal family, AFHQ) takes the largest centred square, as training data is
prepared. Either way the result carries its `Transform`: the affine map from the photo's pixels to the crop's, so a
translated crop can be pasted back (`paste_back`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data import center_crop_resize
from .detect import Face
from .files import atomic_write_bytes

ALIGNMENTS = ("ffhq", "center-crop")
SUPERSAMPLING = 4  # NVIDIA samples the quad at 4096 px for a 1024 px output
FEATHER = 0.08  # of the crop's side: the width over which a pasted crop fades into the photo


@dataclass(frozen=True)
class Transform:
    """Photo pixel (x, y) -> crop pixel: `matrix @ (x, y, 1)`, pixel centres at integers in both."""

    kind: str
    size: int  # the crop's side
    photo_size: tuple[int, int]  # width, height
    matrix: np.ndarray  # (2, 3)
    face: Face | None = None

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) photo points -> crop points."""
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]

    def inverse(self) -> np.ndarray:
        """(2, 3): crop pixel -> photo pixel."""
        linear = np.linalg.inv(self.matrix[:, :2])
        return np.concatenate([linear, -linear @ self.matrix[:, 2:]], axis=1)

    def to_dict(self) -> dict:
        return {"alignment": self.kind, "size": self.size, "photo_size": list(self.photo_size),
                "photo_to_crop": self.matrix.round(8).tolist(), "crop_to_photo": self.inverse().round(8).tolist(),
                "face": self.face.to_dict() if self.face else None}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> "Transform":
        face = data.get("face")
        face = Face(tuple(face["box"]), face["score"], np.array(face["landmarks"])) if face else None
        return cls(data["alignment"], data["size"], tuple(data["photo_size"]), np.array(data["photo_to_crop"]), face)

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=1) + "\n").encode())


# ---------------------------------------------------------------------------------------------------------------------
# FFHQ


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The oriented square NVIDIA's script crops, as (4, 2) corners: top-left, bottom-left, bottom-right, top-right.

    landmarks: (5, 2) eyes, nose, mouth corners (the nose is not used). The square is centred a tenth of the way from
    the eyes' midpoint to the mouth's, its sides are the larger of 4x the eye distance and 3.6x the eye-to-mouth
    distance, and it is turned so the line from the eyes' midpoint to the mouth's midpoint points down."""
    eye_left, eye_right = landmarks[0].astype(np.float64), landmarks[1].astype(np.float64)
    mouth = (landmarks[3] + landmarks[4]).astype(np.float64) / 2
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye, eye_to_mouth = eye_right - eye_left, mouth - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    centre = eye_avg + eye_to_mouth * 0.1
    return np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])


def quad_transform(quad: np.ndarray, size: int, photo_size: tuple[int, int], face: Face | None) -> Transform:
    """The affine map taking the quad's corners onto the crop's (its top-left corner onto the crop's)."""
    axes = np.stack([quad[3] - quad[0], quad[1] - quad[0]], axis=1) / size  # crop x and y steps, in photo pixels
    linear = np.linalg.inv(axes)
    # PIL's QUAD samples the photo at pixel-centre coordinates + 0.5, as NVIDIA's (quad + 0.5) passes them
    offset = -linear @ quad[0] - 0.5
    return Transform("ffhq", size, photo_size, np.concatenate([linear, offset[:, None]], axis=1), face)


def align_ffhq(photo: Image.Image, face: Face, size: int) -> tuple[Image.Image, Transform]:
    """The FFHQ crop of `face` at `size` px, and its transform."""
    quad = ffhq_quad(face.landmarks)
    transform = quad_transform(quad, size, photo.size, face)
    image, quad = photo, quad.copy()
    qsize = np.hypot(*(quad[3] - quad[0]))
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        image = image.resize((int(np.rint(image.width / shrink)), int(np.rint(image.height / shrink))), Image.Resampling.LANCZOS)
        quad, qsize = quad / shrink, qsize / shrink
    border = max(int(np.rint(qsize * 0.1)), 3)
    low, high = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    crop = (max(low[0] - border, 0), max(low[1] - border, 0), min(high[0] + border, image.width), min(high[1] + border, image.height))
    if crop[2] - crop[0] < image.width or crop[3] - crop[1] < image.height:
        image = image.crop(crop)
        quad = quad - crop[:2]
    low, high = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    pad = (max(-low[0] + border, 0), max(-low[1] + border, 0), max(high[0] - image.width + border, 0), max(high[1] - image.height + border, 0))
    if max(pad) > border - 4:
        pad = tuple(np.maximum(pad, int(np.rint(qsize * 0.3))))
        image = blur_padded(np.float32(image), pad, blur=qsize * 0.02)
        quad = quad + pad[:2]
    sampled = image.transform((size * SUPERSAMPLING,) * 2, Image.Transform.QUAD, (quad + 0.5).flatten(), Image.Resampling.BILINEAR)
    return sampled.resize((size, size), Image.Resampling.LANCZOS), transform


def blur_padded(pixels: np.ndarray, pad: tuple[int, int, int, int], blur: float) -> Image.Image:
    """NVIDIA's padding: the photo mirrored outwards by `pad` (left, top, right, bottom), blurred more and pulled
    towards the median colour the further a pixel is from the photo."""
    left, top, right, bottom = pad
    pixels = np.pad(pixels, ((top, bottom), (left, right), (0, 0)), "reflect")
    height, width, _ = pixels.shape
    y, x, _ = np.ogrid[:height, :width, :1]
    with np.errstate(divide="ignore", invalid="ignore"):  # a side without padding divides by 0: never the nearest
        mask = np.maximum(1.0 - np.minimum(np.float32(x) / left, np.float32(width - 1 - x) / right),
                          1.0 - np.minimum(np.float32(y) / top, np.float32(height - 1 - y) / bottom))  # fmt: skip
    mask = np.nan_to_num(mask, nan=0.0)
    pixels += (gaussian_blur(pixels, blur) - pixels) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    pixels += (np.median(pixels, axis=(0, 1)) - pixels) * np.clip(mask, 0.0, 1.0)
    return Image.fromarray(np.uint8(np.clip(np.rint(pixels), 0, 255)), "RGB")


def gaussian_blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W, C) float pixels blurred by a Gaussian of `sigma` px over H and W (edges mirrored; 4 sigma each side)."""
    radius = max(int(4.0 * sigma + 0.5), 1)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / max(sigma, 1e-6)) ** 2)
    kernel = torch.from_numpy((taps / taps.sum()).astype(np.float32))
    image = torch.from_numpy(np.pad(pixels, ((radius, radius), (radius, radius), (0, 0)), "symmetric")).permute(2, 0, 1)[:, None]
    image = F.conv2d(image, kernel.view(1, 1, 1, -1))
    image = F.conv2d(image, kernel.view(1, 1, -1, 1))
    return image[:, 0].permute(1, 2, 0).numpy()


# ---------------------------------------------------------------------------------------------------------------------
# Centre crop


def align_center(photo: Image.Image, size: int) -> tuple[Image.Image, Transform]:
    """The largest centred square resized to `size` (as training data is prepared), and its transform."""
    side = min(photo.size)
    left, top = (photo.width - side) // 2, (photo.height - side) // 2
    scale = size / side
    matrix = np.array([[scale, 0.0, (0.5 - left) * scale - 0.5], [0.0, scale, (0.5 - top) * scale - 0.5]])
    return center_crop_resize(photo, size), Transform("center-crop", size, photo.size, matrix)


# ---------------------------------------------------------------------------------------------------------------------
# Back into the photo


def paste_back(photo: np.ndarray, crop: np.ndarray, transform: Transform, feather: float = FEATHER) -> np.ndarray:
    """`crop` (S, S, 3) uint8 warped into `photo` (H, W, 3) uint8 by the inverse of `transform`, fading out over the
    crop's outer `feather` fraction; pixels the crop does not cover keep their exact values."""
    height, width = photo.shape[:2]
    corners = np.array([[-0.5, -0.5], [-0.5, transform.size - 0.5], [transform.size - 0.5, -0.5], [transform.size - 0.5] * 2])
    inverse = transform.inverse()
    covered = corners @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = np.maximum(np.floor(covered.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(covered.max(axis=0)).astype(int) + 1, (width, height))
    result = photo.copy()
    if x0 >= x1 or y0 >= y1:
        return result
    ys, xs = np.mgrid[y0:y1, x0:x1]
    points = transform.apply(np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64))
    grid = torch.from_numpy(((points + 0.5) / transform.size * 2 - 1).astype(np.float32)).view(1, y1 - y0, x1 - x0, 2)
    source = torch.from_numpy(np.array(crop, dtype=np.float32)).permute(2, 0, 1)[None]
    warped = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)[0].permute(1, 2, 0).numpy()
    inside = np.minimum(points + 0.5, transform.size - 0.5 - points).min(axis=1)  # px to the crop's nearest edge
    weight = np.clip(inside / max(feather * transform.size, 1e-6), 0.0, 1.0).reshape(y1 - y0, x1 - x0, 1)
    region = photo[y0:y1, x0:x1].astype(np.float32)
    blended = np.rint(region + (warped - region) * weight).clip(0, 255).astype(np.uint8)
    result[y0:y1, x0:x1] = np.where(weight > 0, blended, photo[y0:y1, x0:x1])
    return result
