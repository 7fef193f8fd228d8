"""Paragraph-level dedup with a Bloom filter (the DCLM / Dolma BFF approach).

A paragraph is one line of a text item; it is normalised (lowercase, whitespace runs
collapsed) and only lines of at least `min_chars` normalised characters take part
(short lines such as "Figure 1." are never removed). Walking the corpus in global
order, a paragraph already seen is removed from its document; images stay. If the
removed paragraphs made up more than `max_duplicate_fraction` of the document's text
characters (BFF's whole-document threshold), or nothing is left of the document, it
is dropped with reason `mostly_duplicate_paragraphs`.

How it fits the GlobalStep protocol (first occurrence is order-dependent):
- `signatures` yields one 16-byte record per eligible paragraph (xxh3-128 of the
  normalised line), in stream order: a variable number per document, fixed size
  each, so the executor's per-shard signature files and caching work unchanged.
- `plan`, on the driver, walks the shards in global order with ONE Bloom filter (a
  numpy bit array of `bloom_bits(expected_items, fp_rate)` bits, k probes by double
  hashing of the two 64-bit halves): a paragraph is a duplicate if the filter built
  from all earlier shards holds it, or it occurs earlier in the same shard (exact,
  np.unique); then the shard's paragraphs are added. The result per shard is a
  packed bit mask over its paragraph records, so every worker count gives the same
  output. Memory: the filter (1.2 MB per million expected paragraphs at 1% false
  positives) plus one shard's records at a time (~16 x k bytes per paragraph).
- `run` re-splits each document the same way and applies the mask in order.
A Bloom false positive removes a paragraph that was not seen before, with
probability about `fp_rate` once the filter holds `expected_items` paragraphs.

Partitioned plan (what the executors run, `partition.py`): one record per paragraph keyed
by its 128-bit hash, so equal paragraphs meet in one partition task, which marks every
occurrence after the first in reading order. It is exact: the same marks as `plan` except
that a Bloom false positive never removes a first occurrence (with the filter sized as
configured, the two agree wherever the filter has no false positive).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import xxhash

from vloom.curate.base import GlobalStep
from vloom.curate.dedup.exact import HASH128, hash128_records, later_copies
from vloom.curate.partition import marks_of
from vloom.curate.registry import register
from vloom.doc import Document

_WS = re.compile(r"\s+")
_BLANKS = re.compile(r"\n{3,}")


def bloom_bits(expected_items: int, fp_rate: float) -> tuple[int, int]:
    """(bits, hashes) of a Bloom filter for `expected_items` at false-positive rate `fp_rate`."""
    m = math.ceil(-expected_items * math.log(fp_rate) / math.log(2) ** 2)
    k = max(1, round(m / expected_items * math.log(2)))
    return max(64, m), k


class Bloom:
    """A Bloom filter over 128-bit keys given as [n, 2] uint64 (double hashing)."""

    def __init__(self, bits: int, hashes: int) -> None:
        self.m, self.k = np.uint64(bits), hashes
        self.bits = np.zeros((bits + 7) // 8, dtype=np.uint8)

    def _probes(self, keys: np.ndarray) -> np.ndarray:
        i = np.arange(self.k, dtype=np.uint64)
        return (keys[:, :1] + i[None, :] * keys[:, 1:2]) % self.m  # [n, k], wraps mod 2**64

    def contains(self, keys: np.ndarray) -> np.ndarray:
        p = self._probes(keys)
        hit = (self.bits[p >> np.uint64(3)] >> (p & np.uint64(7)).astype(np.uint8)) & 1
        return hit.all(axis=1)

    def add(self, keys: np.ndarray) -> None:
        p = self._probes(keys).ravel()
        np.bitwise_or.at(self.bits, p >> np.uint64(3), (1 << (p & np.uint64(7))).astype(np.uint8))


def paragraph_key(line: str, min_chars: int) -> bytes | None:
    """The 16-byte key of a line, or None when it is too short to take part."""
    norm = _WS.sub(" ", line.lower()).strip()
    if len(norm) < min_chars:
        return None
    return xxhash.xxh3_128_digest(norm.encode("utf-8"))


@register("paragraph_dedup")
class ParagraphDedup(GlobalStep):
    """Remove paragraphs seen earlier in the corpus; drop documents that were mostly those."""

    sig_size = 16
    keeps_counts = True
    record_dtype = HASH128

    def __init__(
        self,
        min_chars: int = 20,
        expected_items: int = 10_000_000,
        fp_rate: float = 0.01,
        max_duplicate_fraction: float = 0.8,
        skip_image_docs: bool = False,
    ) -> None:
        super().__init__()
        if min_chars < 1:
            raise ValueError(f"min_chars must be >= 1, got {min_chars}")
        if expected_items < 1:
            raise ValueError(f"expected_items must be >= 1, got {expected_items}")
        if not 0 < fp_rate < 1:
            raise ValueError(f"fp_rate must be in (0, 1), got {fp_rate}")
        if not 0 <= max_duplicate_fraction <= 1:
            raise ValueError(
                f"max_duplicate_fraction must be in [0, 1], got {max_duplicate_fraction}"
            )
        self.min_chars = min_chars
        self.bits, self.hashes = bloom_bits(expected_items, fp_rate)
        self.max_fraction = max_duplicate_fraction
        self.skip_image_docs = skip_image_docs
        self._mask: np.ndarray | None = None

    def _takes_part(self, doc: Document) -> bool:
        return not (self.skip_image_docs and doc.n_images)

    def _keys(self, doc: Document) -> Iterator[bytes]:
        if self._takes_part(doc):
            for t in doc.texts:
                if t:
                    for line in t.split("\n"):
                        key = paragraph_key(line, self.min_chars)
                        if key is not None:
                            yield key

    def signatures(self, docs: Iterable[Document]) -> Iterator[bytes]:
        for doc in docs:
            yield from self._keys(doc)

    def plan(self, per_shard: list[list[bytes]]) -> list[Any]:
        bloom = Bloom(self.bits, self.hashes)
        states = []
        for sigs in per_shard:
            n = len(sigs)
            if n == 0:
                states.append((0, np.zeros(0, dtype=np.uint8)))
                continue
            raw = b"".join(sigs)
            keys = np.frombuffer(raw, dtype="<u8").reshape(n, 2)
            _, first = np.unique(np.frombuffer(raw, dtype="V16"), return_index=True)
            dup = np.ones(n, dtype=bool)
            dup[first] = False  # first occurrence within this shard
            dup |= bloom.contains(keys)  # or seen in an earlier shard
            bloom.add(keys)
            states.append((n, np.packbits(dup)))
        return states

    def records(self, sigs: np.ndarray) -> np.ndarray:
        return hash128_records(sigs)

    def plan_partition(self, recs: np.ndarray, part: int, rnd: int, ctx: Any) -> np.ndarray:
        return marks_of(later_copies(recs, "lo"))

    def shard_state(self, sigs: np.ndarray, j: np.ndarray, v: np.ndarray) -> Any:
        mask = np.zeros(sigs.shape[0], dtype=bool)
        mask[j] = True
        return (sigs.shape[0], np.packbits(mask))

    def load_plan(self, state: Any) -> None:
        n, packed = state
        self._mask = np.unpackbits(packed, count=n).astype(bool)

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        docs = self.planned_stream(docs)
        mask = self._mask
        assert mask is not None
        pos = 0
        for doc in docs:
            if not self._takes_part(doc):
                yield doc
                continue
            new_texts: list[str | None] = []
            total = removed = n_removed = 0
            for t in doc.texts:
                if t is None:
                    new_texts.append(None)
                    continue
                total += len(t)
                kept_lines = []
                for line in t.split("\n"):
                    if paragraph_key(line, self.min_chars) is not None:
                        dup = bool(mask[pos])
                        pos += 1
                        if dup:
                            removed += len(line)
                            n_removed += 1
                            continue
                    kept_lines.append(line)
                new_texts.append(_BLANKS.sub("\n\n", "\n".join(kept_lines)).strip())
            if n_removed == 0:
                yield doc
                continue
            images = [im for im, t in zip(doc.images, new_texts, strict=True) if t != ""]
            texts = [t for t in new_texts if t != ""]
            if removed > self.max_fraction * total or not texts:
                self.drop("mostly_duplicate_paragraphs")
                self.counts["paragraphs_removed"] += n_removed
                continue
            self.counts["paragraphs_removed"] += n_removed
            self.counts["documents_edited"] += 1
            yield dataclasses.replace(doc, texts=texts, images=images)
