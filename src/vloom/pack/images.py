"""Image preprocessing shared by every stage that feeds images to the model (pack, eval).

Two modes (`model.vision.resolution`):
- fixed: every image is resized to a `pack.image_size` square (aspect not kept) and makes
  `(image_size / (patch * merge))**2` LM tokens.
- dynamic (Qwen2-VL's naive dynamic resolution): the aspect ratio is kept; both sides are
  rounded to multiples of `patch * merge` and the area is scaled into
  [min_pixels, max_pixels] (`smart_resize`), so an image makes `(h/p/m) * (w/p/m)` tokens.

The arrays these functions return become model inputs through `vloom.imagebatch`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from vloom.config import ExperimentConfig, VisionConfig
from vloom.media import ImageError, decode_image, to_array

# Qwen2-VL rejects images more elongated than this; they would be all rounding.
MAX_ASPECT = 200


def smart_resize(
    height: int, width: int, factor: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """(height, width) rounded to multiples of `factor`, aspect ratio kept within rounding
    (each side at most factor/2 from the scaled original), area in [min_pixels, max_pixels].

    Qwen2-VL's smart_resize with one change: the scale is chosen so that rounding to the
    nearest multiple cannot leave the budget ((h*s + f/2) * (w*s + f/2) <= max_pixels, and
    likewise for the minimum), instead of flooring after an over-budget round. So for a
    given aspect ratio the token count never decreases as the image grows (Qwen's floor
    can give a larger image fewer tokens); the cost is up to factor/2 per side below the
    budget for images that hit it. Sides never drop below one `factor`; an image so thin
    that one factor on its short side breaks the budget loses length on its long side."""
    if height < 1 or width < 1:
        raise ValueError(f"image of {width}x{height} pixels has no area")
    if max(height, width) / min(height, width) > MAX_ASPECT:
        raise ImageError(
            "extreme_aspect_ratio", f"aspect ratio of {width}x{height} exceeds {MAX_ASPECT}:1"
        )
    f = factor
    a, b = float(height) * width, f / 2 * (height + width)

    def scale(c: float, sign: float) -> float:  # s > 0 with (h s + sign f/2)(w s + sign f/2) = c
        bb = sign * b
        return (-bb + math.sqrt(bb * bb - 4 * a * (f * f / 4 - c))) / (2 * a)

    s = min(max(1.0, scale(min_pixels, -1.0)), scale(max_pixels, 1.0))
    # Round half down with a margin: a target exactly on .5 (numerical noise) rounds alike.
    h = max(f, math.floor(height * s / f + 0.5 - 1e-9) * f)
    w = max(f, math.floor(width * s / f + 0.5 - 1e-9) * f)
    while h * w > max_pixels and max(h, w) > f:
        if h >= w:
            h -= f
        else:
            w -= f
    return h, w


def image_tokens(h: int, w: int, cfg: VisionConfig) -> int:
    """LM tokens of an image of h x w pixels (sides multiples of patch_size * merge)."""
    f = cfg.patch_size * cfg.merge
    return (h // f) * (w // f)


def max_image_tokens(cfg: VisionConfig, image_size: int) -> int:
    """The most LM tokens one image can make in this mode (bounds the packer's padding)."""
    f = cfg.patch_size * cfg.merge
    if cfg.resolution == "fixed":
        return (image_size // f) ** 2
    # smart_resize keeps h*w <= max_pixels, both multiples of f.
    return cfg.max_pixels // (f * f)


def prepare_image(
    data: bytes, cfg: VisionConfig | ExperimentConfig, image_size: int | None = None
) -> tuple[np.ndarray, int]:
    """Image bytes -> (pixels [H, W, 3] uint8, number of LM tokens it makes).

    `cfg` is the model's VisionConfig (a checkpoint's `model.vision.cfg`, with
    `image_size` = `model.vision.image_size`) or a whole ExperimentConfig (then
    `pack.image_size` is used). fixed: an `image_size` square; dynamic: the smart-resized
    image (aspect kept). Raises ImageError (with a ledger `reason`) for bytes that are
    not a usable image."""
    if isinstance(cfg, ExperimentConfig):
        cfg, image_size = cfg.model.vision, image_size or cfg.pack.image_size
    f = cfg.patch_size * cfg.merge
    if cfg.resolution == "fixed":
        if image_size is None:
            raise ValueError("fixed-resolution images need image_size")
        if image_size % f:
            raise ValueError(f"image_size={image_size} is not a multiple of patch_size x merge={f}")
        return to_array(data, image_size), (image_size // f) ** 2
    img = decode_image(data)
    h, w = smart_resize(img.height, img.width, f, cfg.min_pixels, cfg.max_pixels)
    if (img.width, img.height) != (w, h):
        img = img.resize((w, h), Image.Resampling.BICUBIC)
    return np.array(img, dtype=np.uint8), image_tokens(h, w, cfg)
