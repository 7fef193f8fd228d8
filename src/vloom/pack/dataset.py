"""The streaming dataset training reads: packed rows, shuffled per epoch, resumable.

Rows are read lazily from memory-mapped safetensors shards, so memory stays flat
whatever the corpus size. The order is a pure function of (seed, epoch), and the
position is two integers, which is all a checkpoint needs to resume exactly.

Shards may carry per-token arrays beside `tokens` ([R, L+1] each): `loss_mask` (SFT rows:
1 = a token the model must predict) and `segments` (the conversation or document index of
each token in its row, -1 = padding; document masking). `take` returns them with each row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from vloom.imagebatch import ImageBatch

TOKEN_ARRAYS = ("loss_mask", "segments")  # optional per-token arrays shaped like `tokens`


class PackedStream:
    """Rows of one stream (`text`, `image`, or a tuple of both), optionally only the rows
    whose source tag (see `stats.json` "sources") is in `sources`."""

    def __init__(
        self,
        packed_dir: str | Path,
        stream: str | tuple[str, ...],
        seed: int = 0,
        sources: set[int] | None = None,
        require: tuple[str, ...] = (),
    ) -> None:
        """require: per-token arrays every shard must hold (an SFT stream: its loss mask)."""
        streams = (stream,) if isinstance(stream, str) else tuple(stream)
        self.paths = [
            p for s in streams for p in sorted(Path(packed_dir).glob(f"{s}-*.safetensors"))
        ]
        self.stream, self.seed = "+".join(streams), seed
        self._files = [safe_open(str(p), framework="numpy") for p in self.paths]
        self._index: list[tuple[int, int]] = []
        self._offsets = []
        self._grids: list[tuple[np.ndarray, np.ndarray] | None] = []
        self._arrays: list[tuple[str, ...]] = []  # the per-token arrays of each shard
        for si, f in enumerate(self._files):
            shape = f.get_slice("tokens").get_shape()
            n = shape[0]
            self._arrays.append(self._token_arrays(si, shape, require))
            if sources is None:
                self._index.extend((si, r) for r in range(n))
            else:
                if "sources" not in f.keys():
                    raise ValueError(
                        f"{self.paths[si]}: packed rows have no source tags (re-pack the data)"
                    )
                tags = f.get_tensor("sources")
                self._index.extend((si, r) for r in range(n) if int(tags[r]) in sources)
            self._offsets.append(f.get_tensor("image_offsets"))
            # Dynamic resolution: where each image's patches start in the flat array.
            if "image_grids" in f.keys():
                grids = f.get_tensor("image_grids").astype(np.int64)
                starts = np.zeros(len(grids) + 1, dtype=np.int64)
                starts[1:] = np.cumsum(grids[:, 0] * grids[:, 1])
                self._grids.append((grids, starts))
            else:
                self._grids.append(None)
        self.epoch, self.cursor = 0, 0
        self._order = self._perm(0) if self._index else np.zeros(0, dtype=np.int64)

    def _token_arrays(self, si: int, shape: list[int], require: tuple[str, ...]) -> tuple:
        f, keys = self._files[si], set(self._files[si].keys())
        for name in require:
            if name not in keys:
                raise ValueError(f"{self.paths[si]}: field {name!r} is missing (re-pack the data)")
        have = tuple(k for k in TOKEN_ARRAYS if k in keys)
        for k in have:
            if f.get_slice(k).get_shape() != shape:
                raise ValueError(
                    f"{self.paths[si]}: field {k!r} has shape {f.get_slice(k).get_shape()}, "
                    f"tokens have {shape}"
                )
        return have

    def __len__(self) -> int:
        return len(self._index)

    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self._index))

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray | ImageBatch]:
        """Row i (in storage order): tokens [T+1] int32 and its images: [n, H, W, 3] uint8,
        or (dynamic-resolution shards) an ImageBatch of its n images."""
        si, r = self._index[i]
        f = self._files[si]
        tokens = f.get_slice("tokens")[r : r + 1][0]
        lo, hi = self._offsets[si][r], self._offsets[si][r + 1]
        if self._grids[si] is not None:
            grids, starts = self._grids[si]
            a, b = int(starts[lo]), int(starts[hi])
            dim = f.get_slice("patches").get_shape()[1]
            patches = f.get_slice("patches")[a:b] if b > a else np.zeros((0, dim), np.uint8)
            return tokens, ImageBatch(
                torch.from_numpy(np.array(patches, dtype=np.uint8)),
                torch.from_numpy(grids[int(lo) : int(hi)].copy()),
            )
        if hi == lo:  # safetensors cannot slice an empty range
            return tokens, np.zeros((0, *self._image_shape(si)), dtype=np.uint8)
        images = f.get_slice("images")[int(lo) : int(hi)]
        return tokens, images

    def token_arrays(self, i: int) -> dict[str, np.ndarray]:
        """Row i's per-token arrays (`loss_mask`, `segments`) that its shard holds."""
        si, r = self._index[i]
        f = self._files[si]
        return {k: f.get_slice(k)[r : r + 1][0] for k in self._arrays[si]}

    def _image_shape(self, si: int) -> tuple[int, ...]:
        return tuple(self._files[si].get_slice("images").get_shape()[1:])

    def take(
        self, n: int, lo: int = 0, hi: int | None = None
    ) -> list[tuple[np.ndarray, np.ndarray | ImageBatch, dict[str, np.ndarray]]]:
        """Advance by n rows; read and return only rows lo..hi of them (a rank's share):
        (tokens, images, per-token arrays) each."""
        if not self._index:
            raise ValueError(f"stream {self.stream!r} is empty: no packed rows to read")
        hi = n if hi is None else hi
        out = []
        for i in range(n):
            if self.cursor >= len(self._order):
                self.epoch += 1
                self.cursor = 0
                self._order = self._perm(self.epoch)
            if lo <= i < hi:
                j = int(self._order[self.cursor])
                out.append((*self.row(j), self.token_arrays(j)))
            self.cursor += 1
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self._order = self._perm(self.epoch)
