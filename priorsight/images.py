"""Image decoding and the one preprocessing function shared by training, indexing and serving.

Patent drawings are line art: decode anything PIL reads (1-bit TIFF, PNG, JPEG), refuse
decompression bombs, flatten to grayscale on white, pad to a square and resize, then normalise
the way the model's pretrained weights expect (:data:`NORMALIZATIONS`): EfficientNet-Lite was
trained on ``(x - 127.5) / 127.5`` ("inception"), most torchvision/HF models on ImageNet mean and
std. The wrong one costs quality before any training (docs/training.md, preprocessing).
:class:`Preprocessing` bundles a model's size and normalisation: every stage calls that object.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps

#: ImageNet statistics, applied to the gray channel x3.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Normalize = Literal["imagenet", "inception"]
#: name -> (mean, std) per channel, on pixel values scaled to [0, 1]
NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # [-1, 1]: TF EfficientNet-Lite, Inception, CLIP-like
}
DEFAULT_MAX_PIXELS = 80_000_000


def _stats(normalize: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        mean, std = NORMALIZATIONS[normalize]
    except KeyError:
        raise ValueError(f"normalize must be one of {sorted(NORMALIZATIONS)}, got {normalize!r}") from None
    return np.asarray(mean, np.float32)[:, None, None], np.asarray(std, np.float32)[:, None, None]


class ImageError(ValueError):
    """The bytes are not a decodable image (corrupt, truncated, too large, not an image)."""


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode bytes to a grayscale ``L`` image on white. Raises :class:`ImageError`."""
    if not data:
        raise ImageError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(f"image too large: {w}x{h} pixels exceeds the limit of {max_pixels}")
            img.load()  # forces a full decode: truncated files fail here
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image too large (decompression bomb): {exc}") from exc
    except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        raise ImageError(f"cannot decode image: {exc}") from exc
    return to_gray_on_white(img)


def to_gray_on_white(img: Image.Image) -> Image.Image:
    """Flatten alpha onto white and convert to 8-bit grayscale."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return img.convert("L")


@dataclass(frozen=True)
class Crop:
    """A crop box in relative coordinates (0..1) of the image."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        if not (0 <= self.x0 < self.x1 <= 1 and 0 <= self.y0 < self.y1 <= 1):
            raise ValueError(f"crop box must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1: {self}")


def square_pad(img: Image.Image, margin: float = 0.02) -> Image.Image:
    """Trim the white border around the ink, then pad to a white square with a small margin."""
    inverted = ImageOps.invert(img)
    bbox = inverted.point(lambda p: 255 if p > 32 else 0).getbbox()
    if bbox:
        img = img.crop(bbox)
    w, h = img.size
    side = int(max(w, h) * (1 + 2 * margin)) + 1
    canvas = Image.new("L", (side, side), 255)
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    return canvas


def preprocess(img: Image.Image, size: int = 224, crop: Crop | None = None,
               normalize: Normalize = "inception") -> np.ndarray:
    """The shared preprocessing: optional crop, trim + square pad, resize, normalise.

    Returns a float32 array of shape (3, size, size). Call it through a model's
    :class:`Preprocessing`, which knows the normalisation its weights expect."""
    img = to_gray_on_white(img)
    if crop is not None:
        w, h = img.size
        img = img.crop((int(crop.x0 * w), int(crop.y0 * h), max(int(crop.x1 * w), 1), max(int(crop.y1 * h), 1)))
    img = square_pad(img)
    # Line art: reduce in steps with a box filter so thin lines survive (no aliasing gaps).
    img = img.resize((size, size), Image.Resampling.BOX if img.size[0] > 2 * size else Image.Resampling.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / 255.0
    mean, std = _stats(normalize)
    return (np.broadcast_to(x, (3, size, size)) - mean) / std


def white_value(normalize: Normalize = "inception", dtype: np.dtype = np.float32) -> np.ndarray:
    """Paper white in a normalised space, shape (3, 1, 1)."""
    mean, std = _stats(normalize)
    return ((1 - mean) / std).astype(dtype)


@dataclass(frozen=True)
class Preprocessing:
    """A model's input: ``size`` x ``size`` pixels, normalised as its weights expect."""

    size: int = 224
    normalize: Normalize = "inception"

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"image size must be >= 8, got {self.size}")
        _stats(self.normalize)

    def __call__(self, img: Image.Image, crop: Crop | None = None) -> np.ndarray:
        return preprocess(img, self.size, crop, self.normalize)

    def load(self, data: bytes, crop: Crop | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """Decode (raises :class:`ImageError`) and preprocess one image file's bytes."""
        return self(decode_image(data, max_pixels), crop)

    def white(self, dtype: np.dtype = np.float32) -> np.ndarray:
        return white_value(self.normalize, dtype)
