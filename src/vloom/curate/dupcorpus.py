"""A synthetic corpus of short documents with planted duplicates, for dedup tests and scale runs.

Originals are three paragraphs of 30-40 words drawn from a 5,000-word vocabulary; a fifth of
them end with one of 50 boilerplate lines (paragraph_dedup's work). Copies are made of a
recent original (the last 512), so they come later in reading order:
- `exact_share`: the same text (exact_dedup's work);
- `near_share`: one word replaced (~0.9 Jaccard on word 5-grams: minhash_dedup's work).
Copies carry `metadata["duplicate_of"]` naming the original, the labels
`dedup.scoring.score_dedup` scores against. Every document has `metadata["src"]` ("a" or
"b", for mix's shares) and, but 1% of them, a `score` in tenths (ties and missing scores
for mix's repeat tiers). Generation streams: memory does not grow with `n`.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from vloom.doc import Document, write_shard

_SYL = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "du", "an", "el", "or", "is"]


def _vocab(rng: random.Random, size: int = 5000) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYL) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def planted_docs(
    n: int, seed: int = 0, exact_share: float = 0.05, near_share: float = 0.05
) -> Iterator[Document]:
    """`n` documents in reading order, with planted exact and near copies (labelled)."""
    rng = random.Random(seed)
    vocab = _vocab(rng)
    boiler = [
        f"share this page with friends and family, subscribe to the newsletter no. {i}"
        for i in range(50)
    ]
    recent: deque[tuple[str, list[str]]] = deque(maxlen=512)
    for i in range(n):
        r = rng.random()
        meta: dict = {"src": "a" if rng.random() < 0.6 else "b"}
        if rng.random() < 0.99:
            meta["score"] = round(rng.random(), 1)
        if recent and r < exact_share + near_share:
            orig, paras = rng.choice(recent)
            meta["duplicate_of"] = orig
            if r >= exact_share:  # near copy: one word of one paragraph replaced
                paras = list(paras)
                k = rng.randrange(len(paras))
                words = paras[k].split(" ")
                words[rng.randrange(len(words))] = rng.choice(vocab)
                paras[k] = " ".join(words)
        else:
            paras = [" ".join(rng.choices(vocab, k=rng.randint(30, 40))) for _ in range(3)]
            if rng.random() < 0.2:
                paras.append(rng.choice(boiler))
            recent.append((f"d{i:09d}", paras))
        yield Document.from_items(f"d{i:09d}", ["\n".join(paras)], source="planted", metadata=meta)


def write_planted(out: Path, n: int, shard_size: int = 10_000, seed: int = 0) -> list[Path]:
    """Write `planted_docs(n, seed)` as Parquet shards of `shard_size`; returns their paths."""
    paths: list[Path] = []
    batch: list[Document] = []

    def flush() -> None:
        paths.append(out / f"part-{len(paths):05d}.parquet")
        write_shard(paths[-1], batch)
        batch.clear()

    for doc in planted_docs(n, seed):
        batch.append(doc)
        if len(batch) == shard_size:
            flush()
    if batch:
        flush()
    return paths
