"""Greedy sequence packing into fixed-length rows, two streams: text-only and image-bearing.

Policy: documents are concatenated into rows of `seq_len + 1` tokens (inputs and
shifted targets come from the same row). A document may continue into the next
row, but an image block never straddles a row: when it does not fit, the rest of
the row is padded (`<pad>`, skipped by the loss) and the block starts the next row.
The cost is the padding share, reported in `stats.json` as `pad_fraction`; it
stays small while image blocks are short relative to `seq_len`. Bound: a row pads
fewer positions than the image block that did not fit, so every row but a stream's
last pads at most `max_image_tokens` positions: pad_fraction <= max_image_tokens /
(seq_len + 1) + (one last row per stream) / rows. With dynamic resolution blocks vary in
size; the vision encoder packs patches without padding, so this is the only padding.

Images are stored as `images` [n, H, W, 3] (fixed size) or, when the writer has a
`patch` (dynamic resolution), as `patches` [sum of patches, p*p*3] uint8 plus
`image_grids` [n, 2] (patch rows, cols); `image_offsets` indexes images per row in both.

Each row is tagged with the source (`Document.source`) that contributed most of its
tokens, so a training stage can mix sources by share; rows that span documents of
two sources (a row boundary between them) carry the majority one.

Per-token arrays beside `tokens` (`extras`, each [rows, seq_len + 1]): SFT rows carry
`loss_mask` and `segments` (see pack/sft.py); with `pack.document_masking` pre-training rows
carry `segments`: the index of the document each position belongs to within its row (0, 1,
...; padding -1), so attention can stay inside a document. A document ends with `<eos>` (the
sequence layout), so a new segment starts after each `<eos>`; a document continued from the
previous row is segment 0 of its new row. The packing itself does not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from vloom.imagebatch import ImageBatch
from vloom.sequence import DEFAULT_LAYOUT, TokenLayout

SEGMENTS = "segments"  # per-token: document (or conversation) index within the row, -1 padding
LOSS_MASK = "loss_mask"  # per-token: 1 where the token is one the model must predict (SFT)


@dataclass
class PackedShardWriter:
    """Accumulates rows (+ their images) and writes `<stream>-NNNNN.safetensors` shards."""

    out_dir: Path
    stream: str
    row_len: int
    image_size: int
    shard_rows: int
    sources: dict[str, int] = field(default_factory=dict)  # name -> id, shared by the streams
    patch: tuple[int, int] | None = None  # (patch_size, merge): store variable-size patches
    layout: TokenLayout = DEFAULT_LAYOUT  # the pad and image ids rows are filled with
    segments: bool = False  # pre-training rows carry `segments` (pack.document_masking)
    extras: dict[str, type] = field(default_factory=dict)  # per-token array name -> dtype
    rows: list[np.ndarray] = field(default_factory=list)
    row_extras: dict[str, list[np.ndarray]] = field(default_factory=dict)
    row_sources: list[int] = field(default_factory=list)
    row_images: list[list[np.ndarray]] = field(default_factory=list)
    n_shards: int = 0
    n_rows: int = 0
    n_images: int = 0
    n_pad: int = 0

    def __post_init__(self) -> None:
        if self.segments:
            self.extras.setdefault(SEGMENTS, np.int32)
        self.row_extras = {k: [] for k in self.extras}

    def add_row(
        self,
        tokens: list[int],
        images: list[np.ndarray],
        source: str = "",
        arrays: dict[str, Sequence[int] | np.ndarray] | None = None,
    ) -> None:
        """One row of `row_len` tokens, its images, its source tag and, for each of the
        writer's `extras`, its per-token array (same length as `tokens`)."""
        assert len(tokens) == self.row_len, (len(tokens), self.row_len)
        arrays = arrays or {}
        assert set(arrays) == set(self.extras), (sorted(arrays), sorted(self.extras))
        for name, dtype in self.extras.items():
            a = np.asarray(arrays[name], dtype=dtype)
            assert a.shape == (self.row_len,), (name, a.shape)
            self.row_extras[name].append(a)
        arr = np.asarray(tokens, dtype=np.int32)
        assert (
            self.patch is not None
            or int((arr == self.layout.image).sum()) % max(len(images), 1) == 0
        )
        self.rows.append(arr)
        self.row_sources.append(self.sources.setdefault(source, len(self.sources)))
        self.row_images.append(images)
        self.n_pad += int((arr == self.layout.pad).sum())
        if len(self.rows) >= self.shard_rows:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        counts = [len(ims) for ims in self.row_images]
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(counts)
        flat = [im for ims in self.row_images for im in ims]
        tensors = {
            "tokens": np.stack(self.rows),
            "image_offsets": offsets,
            "sources": np.asarray(self.row_sources, dtype=np.int32),
        }
        for name, arrs in self.row_extras.items():
            tensors[name] = np.stack(arrs)
        if self.patch is None:
            s = self.image_size
            tensors["images"] = np.stack(flat) if flat else np.zeros((0, s, s, 3), dtype=np.uint8)
        else:
            b = ImageBatch.from_pixels(flat, *self.patch)
            tensors["patches"] = b.patches.numpy()
            tensors["image_grids"] = b.grids.numpy().astype(np.int32)
        path = self.out_dir / f"{self.stream}-{self.n_shards:05d}.safetensors"
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(tensors, str(tmp))
        tmp.replace(path)
        self.n_shards += 1
        self.n_rows += len(self.rows)
        self.n_images += len(flat)
        self.rows, self.row_images, self.row_sources = [], [], []
        self.row_extras = {k: [] for k in self.extras}


class Packer:
    """Feeds token blocks into rows for one stream."""

    def __init__(self, writer: PackedShardWriter) -> None:
        self.w = writer
        self.row_len = writer.row_len
        self.cur: list[int] = []
        self.cur_images: list[np.ndarray] = []
        self.tokens_in = 0
        self.source = ""  # the document being added
        self.cur_sources: dict[str, int] = {}  # tokens per source in the current row
        self.segments = writer.segments
        self.cur_seg: list[int] = []  # document index within the row, per position
        self.seg, self.after_eos = 0, False

    def _count(self, n: int) -> None:
        self.cur_sources[self.source] = self.cur_sources.get(self.source, 0) + n

    def _extend(self, ids: list[int]) -> None:
        if self.segments:
            for t in ids:  # a new document starts after an <eos> (not at a row's start)
                if self.after_eos and self.cur_seg:
                    self.seg += 1
                self.cur_seg.append(self.seg)
                self.after_eos = t == self.w.layout.eos
        self.cur.extend(ids)

    def _emit(self) -> None:
        if self.cur:
            pad = self.row_len - len(self.cur)
            self.cur.extend([self.w.layout.pad] * pad)
            top = max(self.cur_sources, key=self.cur_sources.__getitem__, default=self.source)
            arrays = {SEGMENTS: self.cur_seg + [-1] * pad} if self.segments else None
            self.w.add_row(self.cur, self.cur_images, top, arrays)
        self.cur, self.cur_images, self.cur_sources = [], [], {}
        self.cur_seg, self.seg, self.after_eos = [], 0, False

    def add_text(self, ids: list[int]) -> None:
        self.tokens_in += len(ids)
        while ids:
            room = self.row_len - len(self.cur)
            self._extend(ids[:room])
            self._count(len(ids[:room]))
            ids = ids[room:]
            if len(self.cur) == self.row_len:
                self._emit()

    def add_image(self, n_tokens: int, pixels: np.ndarray) -> None:
        if n_tokens > self.row_len - 1:
            raise ValueError(
                f"an image block of {n_tokens} tokens cannot fit a row of {self.row_len}"
            )
        self.tokens_in += n_tokens
        # The last position of a row is only ever a target, so a block must end before it.
        if len(self.cur) + n_tokens > self.row_len - 1:
            self._emit()
        self._extend([self.w.layout.image] * n_tokens)
        self._count(n_tokens)
        self.cur_images.append(pixels)

    def close(self) -> None:
        self._emit()
        self.w.flush()
