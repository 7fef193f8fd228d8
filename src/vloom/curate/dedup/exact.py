"""Exact deduplication: one xxh3-128 signature per document, first occurrence wins.

The signature covers the normalised text (lowercased, whitespace runs collapsed to
one space) and then each image's own hash, in reading order, so two documents
collide only if both their words and their image bytes match. "First" is the
global order: shard order (sorted file names), then row order, whatever the
number of workers, because the plan walks shards in that order.

Partitioned plan (executors, `partition.py`): one record per document keyed by the first
8 bytes of its signature, so equal signatures meet in one partition; there, sorted by
(signature, global position), every record after the first of its signature is a
duplicate. Same drop set as the single-process `plan`, without holding the corpus.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import xxhash

from vloom.curate.base import GlobalStep
from vloom.curate.partition import marks_of
from vloom.curate.registry import register
from vloom.doc import Document

_WS = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    return _WS.sub(" ", text.lower()).strip()


def doc_signature(doc: Document) -> bytes:
    h = xxhash.xxh3_128()
    h.update(normalise_text(doc.text).encode("utf-8"))
    for im in doc.images:
        if im is not None:
            # a marker byte keeps text and image hashes from running into each other
            h.update(b"\x00" + xxhash.xxh3_128_digest(im))
    return h.digest()


HASH128 = np.dtype([("key", "<u8"), ("g", "<i8"), ("lo", "<u8")])


def hash128_records(sigs: np.ndarray) -> np.ndarray:
    """One record per 16-byte hash signature: key = its first 8 bytes, lo = the rest."""
    h = sigs.view("<u8").reshape(-1, 2)
    recs = np.empty(h.shape[0], HASH128)
    recs["key"], recs["lo"], recs["g"] = h[:, 0], h[:, 1], np.arange(h.shape[0])
    return recs


@register("exact_dedup")
class ExactDedup(GlobalStep):
    """Drop every document whose signature was already seen earlier (reason `duplicate`)."""

    sig_size = 16
    record_dtype = HASH128

    def __init__(self) -> None:
        super().__init__()
        self._drop: frozenset[int] = frozenset()

    def signatures(self, docs: Iterable[Document]) -> Iterator[bytes]:
        for doc in docs:
            yield doc_signature(doc)

    def plan(self, per_shard: list[list[bytes]]) -> list[Any]:
        # for each shard, the rows whose signature an earlier row (global order) holds
        seen: set[bytes] = set()
        states = []
        for sigs in per_shard:
            drop = set()
            for j, s in enumerate(sigs):
                if s in seen:
                    drop.add(j)
                seen.add(s)
            states.append(frozenset(drop))
        return states

    def records(self, sigs: np.ndarray) -> np.ndarray:
        return hash128_records(sigs)

    def plan_partition(self, recs: np.ndarray, part: int, rnd: int, ctx: Any) -> np.ndarray:
        return marks_of(later_copies(recs, "lo"))

    def shard_state(self, sigs: np.ndarray, j: np.ndarray, v: np.ndarray) -> Any:
        return frozenset(j.tolist())

    def load_plan(self, state: Any) -> None:
        self._drop = frozenset(state)

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        if self.planned:
            for j, doc in enumerate(docs):
                if j in self._drop:
                    self.drop("duplicate")
                else:
                    yield doc
            return
        seen: set[bytes] = set()  # one stream in memory: streaming dedup is global dedup
        for doc in docs:
            sig = doc_signature(doc)
            if sig in seen:
                self.drop("duplicate")
            else:
                seen.add(sig)
                yield doc


def later_copies(recs: np.ndarray, *fields: str) -> np.ndarray:
    """Global positions of records whose key and `fields` equal an earlier record's (by g):
    every occurrence of a value but the first in reading order."""
    order = np.lexsort([recs["g"], *(recs[f] for f in reversed(fields)), recs["key"]])
    same = np.ones(max(0, recs.size - 1), dtype=bool)
    for f in ("key", *fields):  # one column at a time: no sorted copy of the records
        col = recs[f][order]
        same &= col[1:] == col[:-1]
    return recs["g"][order[1:][same]]
