"""Exact deduplication: one xxh3-128 signature per document, first occurrence wins.

The signature covers the normalised text (lowercased, whitespace runs collapsed to
one space) and then each image's own hash, in reading order, so two documents
collide only if both their words and their image bytes match. "First" is the
global order: shard order (sorted file names), then row order, whatever the
number of workers, because the plan walks shards in that order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import xxhash

from vloom.curate.base import GlobalStep
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


@register("exact_dedup")
class ExactDedup(GlobalStep):
    """Drop every document whose signature was already seen earlier (reason `duplicate`)."""

    sig_size = 16

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[bytes] = set()

    def signatures(self, docs: Iterable[Document]) -> Iterator[bytes]:
        for doc in docs:
            yield doc_signature(doc)

    def plan(self, per_shard: list[list[bytes]]) -> list[Any]:
        # for each shard, the signatures it holds that an earlier shard already holds
        first_shard: dict[bytes, int] = {}
        states: list[set[bytes]] = []
        for i, sigs in enumerate(per_shard):
            prior = set()
            for s in sigs:
                j = first_shard.setdefault(s, i)
                if j < i:
                    prior.add(s)
            states.append(prior)
        return states

    def load_plan(self, state: Any) -> None:
        self._seen = set(state)

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        # seeded with the plan's earlier-shard signatures, streaming dedup = global dedup
        seen = self._seen
        for doc in docs:
            sig = doc_signature(doc)
            if sig in seen:
                self.drop("duplicate")
            else:
                seen.add(sig)
                yield doc
