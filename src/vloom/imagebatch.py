"""The image format shared by packing, the model, training and evaluation.

Variable-size images travel as an `ImageBatch`: one flat array of patches (each patch
`p*p*3` uint8 values, row-major pixels then RGB) and a `(rows, cols)` patch grid per
image. Patches are stored in merge-window order (each m x m window contiguous, windows
row-major), so merging to LM tokens is a reshape and tokens come out row-major.
Fixed-size images travel as one [n, H, W, 3] uint8 tensor; `join_images` turns the images
of several rows into one model input of either kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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
