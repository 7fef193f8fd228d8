"""Image preprocessing shared by every stage that feeds images to the model (pack, eval).

Two modes (`model.vision.resolution`):
- fixed: every image is resized to a `pack.image_size` square (aspect not kept) and makes
  `(image_size / (patch * merge))**2` LM tokens.
- dynamic (Qwen2-VL's naive dynamic resolution): the aspect ratio is kept; both sides are
  rounded to multiples of `patch * merge` and the area is scaled into
  [min_pixels, max_pixels] (`smart_resize`), so an image makes `(h/p/m) * (w/p/m)` tokens.

Variable-size images travel as an `ImageBatch`: one flat array of patches (each patch
`p*p*3` uint8 values, row-major pixels then RGB) and a `(rows, cols)` patch grid per
image. Patches are stored in merge-window order (each m x m window contiguous, windows
row-major), so merging to LM tokens is a reshape and tokens come out row-major.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
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


def patchify(pixels: torch.Tensor | np.ndarray, patch: int, merge: int) -> torch.Tensor:
    """[H, W, 3] -> patches [H/p * W/p, p*p*3] in merge-window order (see module doc)."""
    x = torch.as_tensor(pixels)
    H, W, C = x.shape
    if H % (patch * merge) or W % (patch * merge):
        raise ValueError(f"image of {W}x{H} is not a multiple of patch x merge = {patch * merge}")
    gh, gw = H // patch, W // patch
    x = x.reshape(gh // merge, merge, patch, gw // merge, merge, patch, C)
    x = x.permute(0, 3, 1, 4, 2, 5, 6)  # [bh, bw, dy, dx, py, px, C]
    return x.reshape(gh * gw, patch * patch * C)


def unpatchify(patches: torch.Tensor, grid: tuple[int, int], patch: int, merge: int):
    """Inverse of `patchify`: [gh*gw, p*p*3] -> [gh*p, gw*p, 3]."""
    gh, gw = grid
    x = patches.reshape(gh // merge, gw // merge, merge, merge, patch, patch, -1)
    x = x.permute(0, 2, 4, 1, 3, 5, 6)  # [bh, dy, py, bw, dx, px, C]
    return x.reshape(gh * patch, gw * patch, -1)


@dataclass
class ImageBatch:
    """Images of different sizes as one flat patch array (no padding)."""

    patches: torch.Tensor  # [sum(gh*gw), p*p*3] uint8
    grids: torch.Tensor  # [N, 2] int64 patch rows, cols per image

    def __len__(self) -> int:
        return int(self.grids.shape[0])

    @property
    def patch_counts(self) -> list[int]:
        return [int(h) * int(w) for h, w in self.grids.tolist()]

    def to(self, device, non_blocking: bool = False) -> ImageBatch:
        return ImageBatch(
            self.patches.to(device, non_blocking=non_blocking),
            self.grids.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> ImageBatch:
        return ImageBatch(self.patches.pin_memory(), self.grids.pin_memory())

    @staticmethod
    def from_pixels(images: list, patch: int, merge: int) -> ImageBatch:
        """From [H, W, 3] images of any (valid) sizes."""
        ps = [patchify(im, patch, merge) for im in images]
        grids = [(im.shape[0] // patch, im.shape[1] // patch) for im in images]
        dim = patch * patch * 3
        flat = torch.cat(ps) if ps else torch.zeros(0, dim, dtype=torch.uint8)
        return ImageBatch(flat, torch.tensor(grids, dtype=torch.int64).reshape(-1, 2))

    @staticmethod
    def cat(batches: list[ImageBatch]) -> ImageBatch:
        return ImageBatch(
            torch.cat([b.patches for b in batches]), torch.cat([b.grids for b in batches])
        )


def join_images(
    parts: list[torch.Tensor | np.ndarray | ImageBatch], patch: int | None = None, merge: int = 1
) -> torch.Tensor | ImageBatch | None:
    """Images of several rows/examples, in order, as one model input: same-size [n, H, W, 3]
    stacks concatenate to one tensor; ImageBatches (or, given `patch`, stacks of different
    sizes) become one ImageBatch."""
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        return None
    if all(isinstance(p, ImageBatch) for p in parts):
        return ImageBatch.cat(parts)  # type: ignore[arg-type]
    if any(isinstance(p, ImageBatch) for p in parts):
        raise ValueError("cannot join fixed-size image tensors with an ImageBatch")
    if all(isinstance(p, np.ndarray) for p in parts) and len({p.shape[1:] for p in parts}) == 1:
        return torch.from_numpy(np.concatenate(parts))  # a copy: shard slices are read-only
    ts = [torch.as_tensor(np.array(p)) if isinstance(p, np.ndarray) else p for p in parts]
    if len({tuple(t.shape[1:]) for t in ts}) == 1:
        return torch.cat(ts)
    if patch is None:
        raise ValueError(
            "images of different sizes need dynamic resolution (model.vision.resolution)"
        )
    return ImageBatch.from_pixels([im for t in ts for im in t], patch, merge)
