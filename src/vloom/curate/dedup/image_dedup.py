"""Near-duplicate images across the corpus by perceptual hash (pHash or dHash).

pHash (default): greyscale, resized to 32x32, 2-D DCT-II, the 8x8 lowest frequencies,
each bit = coefficient > their median: 64 bits that survive re-encoding, rescaling and
small shifts (as `imagehash.phash`). dHash: greyscale 9x8, bit = pixel brighter than its
left neighbour. Two images are near-duplicates when their hashes differ in at most
`max_distance` bits.

An image is a duplicate when an earlier image in global order (shard order, then row,
then position in the document) is within `max_distance`. Policy for duplicates:
- `remove_image` (default): the image is taken out of the later document, its text
  stays; a document left with nothing is dropped (reason `duplicate_image`).
- `drop_pair`: a document whose only image is a duplicate (an image-caption pair) is
  dropped (reason `duplicate_image`); in documents with several images the duplicates
  are taken out as above.
Measured on the synthetic world's renders (tests/curate/test_curate_image_dedup.py):
JPEG re-encoding (quality 75) and rescaling move pHash by <= 4 bits at 64 px; a
1-pixel shift plus JPEG moves it by up to 8 bits at 256 px and 16 at 64-128 px (pHash
is not shift-invariant; raise `max_distance` to catch shifted copies). Scenes of one or
two small shapes on a flat background can look alike at 8x8 frequencies: ~0.1% of
distinct-scene pairs fall within 4 bits, so on that world a few % of images merge
with a different scene; natural photos carry more low-frequency structure.

Images that do not decode are never duplicates; they are counted in the step's stats
(`undecodable_images`) and left for `image_filter` to judge.

GlobalStep protocol: `signatures` yields one 16-byte record per image (hash, then a
validity flag), a variable number per document, in stream order. `plan` finds pairs
without comparing all pairs: identical hashes by one sort, then a multi-index search
(pigeonhole: hashes within d bits agree exactly on at least one of d + 1 bit blocks):
per block, sort by the block and compare neighbours within equal runs, verifying the
full distance with popcount. Cost ~ (d + 1) x (n log n + candidate pairs), candidate
pairs ~ n^2 / 2^(64 / (d + 1)) per block for uniform hashes; memory O(n) arrays of 8
bytes plus the candidates of one offset at a time. The result per shard is a packed
bit mask over its image records. That is the single-process plan (in-memory runs).

Partitioned plan (what the executors run, `partition.py`): each valid image gives
`max_distance + 1` records, one per bit block, keyed by (block, the hash's bits there), the
perceptual-hash prefix of that block. Every occurrence of a hash meets every hash that
agrees with it on some block in one partition task, which marks the same images as the
plan above: the later occurrences of an exact hash, and the later of two close first
occurrences (within one key's run, compared as above).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import numpy as np
from PIL import Image

from vloom.curate.base import GlobalStep
from vloom.curate.dedup.minhash import _mix64
from vloom.curate.partition import marks_of
from vloom.curate.registry import register
from vloom.doc import Document
from vloom.media import ImageError, decode_image

_N = 32
# rows 0..7 of the 32-point DCT-II matrix (unnormalised, as scipy's dct type 2 up to a
# constant factor, which a median threshold ignores)
_DCT8 = np.cos(np.pi * np.arange(8)[:, None] * (2 * np.arange(_N)[None, :] + 1) / (2 * _N))
_BITS = np.uint64(1) << np.arange(64, dtype=np.uint64)


def _pack(bits: np.ndarray) -> int:
    return int((_BITS[bits.ravel()]).sum())


def phash(img: Image.Image) -> int:
    """64-bit perceptual hash: DCT of the 32x32 grey image, 8x8 low band vs its median."""
    px = np.asarray(img.convert("L").resize((_N, _N), Image.Resampling.LANCZOS), dtype=np.float64)
    low = _DCT8 @ px @ _DCT8.T  # [8, 8]
    return _pack(low > np.median(low))


def dhash(img: Image.Image) -> int:
    """64-bit difference hash: 9x8 grey, each bit = pixel brighter than its left neighbour."""
    px = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    return _pack(px[:, 1:] > px[:, :-1])


HASHES = {"phash": phash, "dhash": dhash}


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a ^ b)


def near_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of distinct hashes within `max_distance` bits, each pair once."""
    found_i, found_j = [], []
    for key in block_keys(hashes, max_distance):
        order = np.argsort(key, kind="stable")
        for a, b in close_in_runs(key[order], order, hashes, max_distance):
            found_i.append(np.minimum(a, b))
            found_j.append(np.maximum(a, b))
    if not found_i:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pairs = np.unique(np.stack([np.concatenate(found_i), np.concatenate(found_j)], 1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def block_keys(hashes: np.ndarray, max_distance: int) -> Iterator[np.ndarray]:
    """Each of the `max_distance + 1` bit blocks of the hashes (pigeonhole: two hashes within
    `max_distance` bits agree exactly on at least one block)."""
    edges = np.linspace(0, 64, max_distance + 2).astype(int)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi > lo:
            mask = np.uint64((1 << (hi - lo)) - 1)
            yield (hashes >> np.uint64(lo)) & mask


def close_in_runs(
    sk: np.ndarray, order: np.ndarray, hashes: np.ndarray, max_distance: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(a, b) index arrays of the pairs within `max_distance` bits among positions `order`
    that share a run of equal sorted keys `sk`."""
    n = sk.size
    # end of each position's run of equal keys; compare i with i + d inside runs only,
    # so the work is the number of candidate pairs, not n per offset
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    run_end = np.repeat(np.r_[starts[1:], n], np.diff(np.r_[starts, n]))
    active = np.flatnonzero(run_end - np.arange(n) > 1)
    d = 1
    while active.size:
        a, b = order[active], order[active + d]
        close = hamming(hashes[a], hashes[b]) <= max_distance
        yield a[close], b[close]
        d += 1
        active = active[run_end[active] - active > d]


def duplicate_mask(hashes: np.ndarray, valid: np.ndarray, max_distance: int) -> np.ndarray:
    """True for each valid image with an earlier valid image within `max_distance` bits."""
    dup = np.zeros(hashes.size, dtype=bool)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return dup
    uniq, first = np.unique(hashes[idx], return_index=True)
    dup[idx] = True
    dup[idx[first]] = False  # first occurrence of each exact hash
    if max_distance > 0 and uniq.size > 1:
        i, j = near_pairs(uniq, max_distance)
        fi, fj = idx[first[i]], idx[first[j]]
        dup[np.maximum(fi, fj)] = True  # the later of two close first occurrences
    return dup


@register("image_dedup")
class ImageDedup(GlobalStep):
    """Take near-duplicate images out of later documents (or drop duplicate pairs)."""

    sig_size = 16
    keeps_counts = True

    def __init__(
        self,
        max_distance: int = 4,
        hash: Literal["phash", "dhash"] = "phash",
        policy: Literal["remove_image", "drop_pair"] = "remove_image",
    ) -> None:
        super().__init__()
        if not 0 <= max_distance <= 32:
            raise ValueError(f"max_distance must be in 0..32 bits, got {max_distance}")
        if hash not in HASHES:
            raise ValueError(f"hash must be one of {sorted(HASHES)}, got {hash!r}")
        if policy not in ("remove_image", "drop_pair"):
            raise ValueError(f"policy must be remove_image or drop_pair, got {policy!r}")
        self.max_distance, self.hash_fn, self.policy = max_distance, HASHES[hash], policy
        self._state: tuple[int, np.ndarray, np.ndarray] | None = None

    def signatures(self, docs: Iterable[Document]) -> Iterator[bytes]:
        for doc in docs:
            for im in doc.images:
                if im is None:
                    continue
                try:
                    h, ok = self.hash_fn(decode_image(im)), 1
                except ImageError:
                    h, ok = 0, 0
                yield h.to_bytes(8, "little") + ok.to_bytes(8, "little")

    def plan(self, per_shard: list[list[bytes]]) -> list[Any]:
        sizes = [len(s) for s in per_shard]
        rec = np.frombuffer(b"".join(b"".join(s) for s in per_shard), dtype="<u8").reshape(-1, 2)
        valid = rec[:, 1] == 1
        dup = duplicate_mask(rec[:, 0].copy(), valid, self.max_distance)
        states, lo = [], 0
        for n in sizes:
            states.append((n, np.packbits(dup[lo : lo + n]), np.packbits(~valid[lo : lo + n])))
            lo += n
        return states

    record_dtype = np.dtype([("key", "<u8"), ("g", "<i8"), ("h", "<u8")])

    def records(self, sigs: np.ndarray) -> np.ndarray:
        rec = sigs.view("<u8").reshape(-1, 2)
        idx = np.flatnonzero(rec[:, 1] == 1)  # undecodable images are never duplicates
        h = rec[idx, 0]
        out = []
        for b, block in enumerate(block_keys(h, self.max_distance)):
            r = np.empty(idx.size, self.record_dtype)
            # blocks are <= 32 bits wide when there are several: (block, bits) fit one word
            tagged = block if self.max_distance == 0 else block | (np.uint64(b) << np.uint64(40))
            r["key"], r["g"], r["h"] = _mix64(tagged.copy()), idx, h
            out.append(r)
        return np.concatenate(out) if out else np.empty(0, self.record_dtype)

    def plan_partition(self, recs: np.ndarray, part: int, rnd: int, ctx: Any) -> np.ndarray:
        # within a run of one key (block and its bits): the images with that prefix
        r = recs[np.lexsort([recs["g"], recs["h"], recs["key"]])]
        later = np.r_[False, (r["key"][1:] == r["key"][:-1]) & (r["h"][1:] == r["h"][:-1])]
        marks = [r["g"][later]]  # later occurrences of an exact hash
        first = r[~later]  # first occurrence of each hash in each run, sorted by key
        if self.max_distance > 0 and first.size > 1:
            order = np.arange(first.size)
            for a, b in close_in_runs(first["key"], order, first["h"], self.max_distance):
                marks.append(np.maximum(first["g"][a], first["g"][b]))
        return marks_of(np.concatenate(marks))

    def shard_state(self, sigs: np.ndarray, j: np.ndarray, v: np.ndarray) -> Any:
        n = sigs.shape[0]
        dup = np.zeros(n, dtype=bool)
        dup[j] = True
        valid = sigs.view("<u8").reshape(-1, 2)[:, 1] == 1
        return (n, np.packbits(dup), np.packbits(~valid))

    def load_plan(self, state: Any) -> None:
        self._state = state

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        docs = self.planned_stream(docs)
        assert self._state is not None
        n, packed_dup, packed_bad = self._state
        dup = np.unpackbits(packed_dup, count=n).astype(bool)
        bad = np.unpackbits(packed_bad, count=n).astype(bool)
        self.counts["undecodable_images"] += int(bad.sum())
        pos = 0
        for doc in docs:
            slots = [i for i, im in enumerate(doc.images) if im is not None]
            gone = {i for k, i in enumerate(slots) if dup[pos + k]}
            pos += len(slots)
            if not gone:
                yield doc
                continue
            keep = [i for i in range(len(doc.images)) if i not in gone]
            if (self.policy == "drop_pair" and len(slots) == 1) or not keep:
                self.drop("duplicate_image")
                self.counts["images_removed"] += len(gone)
                continue
            self.counts["images_removed"] += len(gone)
            yield dataclasses.replace(
                doc, texts=[doc.texts[i] for i in keep], images=[doc.images[i] for i in keep]
            )
