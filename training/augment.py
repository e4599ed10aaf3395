"""The paper's drawing augmentations -- horizontal flip, random resized crop, random erasing and
GridMask -- with numpy/torch/PIL only, seeded by an explicit ``numpy.random.Generator``.

They work on the output of a :class:`priorsight.images.Preprocessing` (float32 (3, H, W),
normalised as the model expects). Given a PIL drawing instead, the random crop is applied
*before* preprocessing through ``preprocessing(img, crop=Crop(...))`` (full resolution, and the
one shared preprocessing function). Erased and masked regions are filled with paper white by default:
on line art that removes strokes rather than painting grey blocks.

Seeding: ``rng = view_rng(seed, epoch, index, view)`` makes every view of every drawing
reproducible and independent of worker count and order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from priorsight.images import Crop, Normalize, Preprocessing, white_value

Fill = Literal["white", "mean", "noise"]
#: (top, left, height, width) of a crop in pixels
Box = tuple[int, int, int, int]


def view_rng(seed: int, epoch: int, index: int, view: int = 0) -> np.random.Generator:
    """The generator for one augmented view of one drawing in one epoch."""
    return np.random.default_rng([seed, epoch, index, view])


def _fill(shape: tuple[int, ...], fill: Fill, rng: np.random.Generator, dtype,
          normalize: Normalize = "inception") -> np.ndarray:
    if fill == "white":
        return np.broadcast_to(white_value(normalize, dtype), shape)
    if fill == "mean":
        return np.zeros(shape, dtype)
    if fill == "noise":
        return rng.standard_normal(shape).astype(dtype)
    raise ValueError(f"unknown fill {fill!r}: white, mean or noise")


def hflip(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x[:, :, ::-1])


def sample_crop_box(rng: np.random.Generator, height: int, width: int,
                    scale: tuple[float, float] = (0.6, 1.0),
                    ratio: tuple[float, float] = (3 / 4, 4 / 3), attempts: int = 10) -> Box:
    """A box covering ``scale`` of the area with aspect (w/h) in ``ratio`` (log-uniform), as
    torchvision's RandomResizedCrop; the whole image if no sample fits in ``attempts``."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    return 0, 0, height, width


def crop_resize(x: np.ndarray, box: Box, size: int) -> np.ndarray:
    """Crop ``box`` of a (C, H, W) array and resize to (C, size, size), bilinear + antialias."""
    top, left, h, w = box
    patch = torch.from_numpy(np.ascontiguousarray(x[:, top:top + h, left:left + w]))[None]
    out = F.interpolate(patch.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0].numpy().astype(x.dtype, copy=False)


def random_erasing(x: np.ndarray, rng: np.random.Generator, scale: tuple[float, float] = (0.02, 0.2),
                   ratio: tuple[float, float] = (0.3, 3.3), fill: Fill = "white",
                   normalize: Normalize = "inception") -> np.ndarray:
    """Erase one random rectangle (Zhong et al. 2020) covering ``scale`` of the area."""
    _, height, width = x.shape
    top, left, h, w = sample_crop_box(rng, height, width, scale, ratio)
    if (h, w) == (height, width):  # no rectangle fitted: leave the image alone
        return x
    out = x.copy()
    out[:, top:top + h, left:left + w] = _fill((x.shape[0], h, w), fill, rng, x.dtype, normalize)
    return out


def grid_mask_array(rng: np.random.Generator, height: int, width: int,
                    d_range: tuple[float, float] = (0.15, 0.4), ratio: float = 0.5,
                    rotate: float = 0.0) -> np.ndarray:
    """GridMask (Chen et al. 2020): a bool (H, W) mask, True where squares of side
    ``ratio * d`` are dropped on a grid of period ``d`` (a fraction of the image side),
    with a random offset and optional random rotation up to ``rotate`` degrees."""
    side = max(height, width)
    d = max(2, int(round(rng.uniform(*d_range) * side)))
    length = max(1, min(d - 1, int(round(ratio * d))))
    big = int(math.ceil(side * 1.5)) if rotate else side  # room to rotate without empty corners
    off_y, off_x = int(rng.integers(0, d)), int(rng.integers(0, d))
    rows = ((np.arange(big) + off_y) % d) < length
    cols = ((np.arange(big) + off_x) % d) < length
    mask = rows[:, None] & cols[None, :]
    if rotate:
        angle = float(rng.uniform(-rotate, rotate))
        img = Image.fromarray(mask.astype(np.uint8) * 255).rotate(angle, resample=Image.Resampling.NEAREST)
        mask = np.asarray(img) > 127
        y0, x0 = (big - height) // 2, (big - width) // 2
        mask = mask[y0:y0 + height, x0:x0 + width]
    return mask[:height, :width]


def grid_mask(x: np.ndarray, rng: np.random.Generator, d_range: tuple[float, float] = (0.15, 0.4),
              ratio: float = 0.5, rotate: float = 0.0, fill: Fill = "white",
              normalize: Normalize = "inception") -> np.ndarray:
    mask = grid_mask_array(rng, x.shape[1], x.shape[2], d_range, ratio, rotate)
    out = x.copy()
    out[:, mask] = _fill(x.shape, fill, rng, x.dtype, normalize)[:, mask]
    return out


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the augmentations (defaults: moderate, for line drawings)."""

    flip_p: float = 0.5
    crop_p: float = 0.8
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    erase_p: float = 0.25
    erase_scale: tuple[float, float] = (0.02, 0.2)
    erase_ratio: tuple[float, float] = (0.3, 3.3)
    gridmask_p: float = 0.3
    gridmask_d: tuple[float, float] = (0.15, 0.4)
    gridmask_ratio: float = 0.5
    gridmask_rotate: float = 0.0
    fill: Fill = "white"

    def __post_init__(self) -> None:
        for name in ("flip_p", "crop_p", "erase_p", "gridmask_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        if not 0 < self.gridmask_ratio < 1:
            raise ValueError(f"gridmask_ratio must be in (0, 1), got {self.gridmask_ratio}")


class DrawingAugmenter:
    """``augmenter(drawing, rng) -> (3, size, size)`` float32: crop, flip, erase, GridMask.

    ``preprocessing`` is the model's (an int is read as its size with the default
    normalisation); arrays given to it must be in that normalisation."""

    def __init__(self, config: AugmentConfig = AugmentConfig(), preprocessing: Preprocessing | int = 224):
        self.config = config
        self.preprocessing = preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing(preprocessing)
        self.size = self.preprocessing.size

    def __call__(self, drawing: np.ndarray | Image.Image, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        norm = self.preprocessing.normalize
        crop = rng.random() < c.crop_p
        if isinstance(drawing, Image.Image):
            box = None
            if crop:
                w, h = drawing.size
                top, left, ch, cw = sample_crop_box(rng, h, w, c.crop_scale, c.crop_ratio)
                box = Crop(left / w, top / h, (left + cw) / w, (top + ch) / h)
            x = self.preprocessing(drawing, crop=box)
        else:
            if drawing.ndim != 3 or drawing.shape[0] != 3:
                raise ValueError(f"expected a (3, H, W) array, got shape {drawing.shape}")
            x = drawing
            if crop:
                x = crop_resize(x, sample_crop_box(rng, x.shape[1], x.shape[2], c.crop_scale, c.crop_ratio), self.size)
            elif x.shape[1:] != (self.size, self.size):
                x = crop_resize(x, (0, 0, x.shape[1], x.shape[2]), self.size)
        if rng.random() < c.flip_p:
            x = hflip(x)
        if rng.random() < c.erase_p:
            x = random_erasing(x, rng, c.erase_scale, c.erase_ratio, c.fill, norm)
        if rng.random() < c.gridmask_p:
            x = grid_mask(x, rng, c.gridmask_d, c.gridmask_ratio, c.gridmask_rotate, c.fill, norm)
        return np.ascontiguousarray(x, dtype=np.float32)
