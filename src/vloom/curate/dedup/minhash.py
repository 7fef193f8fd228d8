"""Near-duplicate documents by MinHash LSH, first document of each cluster wins.

The recipe is datatrove's (and FineWeb's): text simplified as its `simplify_text`
(lowercase, numbers -> "0", punctuation -> space, whitespace collapsed, diacritics
removed), split into words, word 5-grams hashed with xxh64 of the UTF-8 bytes of the
n-gram joined by single spaces, 14 bands x 8 rows = 112 permutations
`(a * h + b) mod (2**61 - 1)` with `a, b` drawn by `numpy.random.RandomState(seed)`
exactly as datatrove draws them. So per document the minimum hashes are bit-identical
to datatrove's 64-bit xxhash signatures; what differs is only how they are computed
(one numpy op per batch of documents, the Mersenne modulo by shifts instead of a
division) and how clusters are found (sorting band hashes in memory instead of merging
sorted files on disk). DCLM-style settings are parameters (e.g. `bands=20, rows=450`
with `ngram=5`).

A document with fewer than `ngram` words has no shingles and is never a near-duplicate
(as in datatrove); exact_dedup catches short identical texts.

Images: with `match_images=True` (default) a document's band hashes also cover the
bytes of its images, so two documents are near-duplicates only when their texts are
near-identical AND they carry the same images. Two image-caption pairs with the same
templated caption but different pictures are different training data; datatrove,
text-only, would merge them. `match_images=False` is datatrove's behaviour.

Signature per document: its `bands` band hashes (8 bytes each, 0 = no shingles).
Plan: for each band, sort the band hashes of all documents (numpy), link neighbours
with equal hashes, find connected components by vectorised union-find (pointer
jumping), keep the component's first document in global order and drop the others
with reason `near_duplicate`. Plan memory: the signatures the executor hands over are
O(docs x bands x 8 bytes) (~150 bytes per document as a list of bytes objects at the
defaults); the plan itself gathers one band at a time (~32 bytes per document for the
column and its sort) plus the edge list (16 bytes per linked pair): about 0.2 GB per
million documents in all. That is the single-process plan (in-memory runs).

Partitioned plan (what the executors run, `partition.py`): one record per (document,
band), keyed by a bijective mix of the band hash and the band, so equal band hashes meet in
one partition task; there, sorted by (key, band, global position), neighbours with equal
band hashes are candidate pairs (the same edges as above). One resolve task runs
union-find over the pairs only; the first document of each cluster stays. Memory: a
partition's records (18 bytes per document and band), and pairs (bounded by the
near-duplicates, not the corpus).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import xxhash

from vloom.curate.base import GlobalStep
from vloom.curate.partition import later_members
from vloom.curate.registry import register
from vloom.doc import Document

MERSENNE = np.uint64((1 << 61) - 1)
_U61 = np.uint64(61)

# datatrove's number pattern: a run of decimal digits (any script), optionally one
# separator and more digits; Python's \d on str is the Unicode Nd class.
_NUMBERS = re.compile(r"\d+(?:[.,\u060c\u066b\u2396\u2397\u2398]\d+)?")
_WS = re.compile(r"\s+")
_PUNCT_TABLE: dict[int, str] | None = None


def _punctuation_table() -> dict[int, str]:
    """Every Unicode punctuation, symbol and control character -> space (built once)."""
    global _PUNCT_TABLE
    if _PUNCT_TABLE is None:
        table = {}
        for cp in range(sys.maxunicode + 1):
            cat = unicodedata.category(chr(cp))
            if cat[0] in "PS" or cat == "Cc":
                table[cp] = " "
        _PUNCT_TABLE = table
    return _PUNCT_TABLE


def _strip_marks(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def simplify_text(text: str) -> str:
    """Normalise text for shingling, as datatrove's `simplify_text` with its defaults."""
    text = _NUMBERS.sub("0", text.lower())
    text = text.translate(_punctuation_table())
    text = _WS.sub(" ", text).strip()
    if not text.isascii():  # the per-character pass only where it can change something
        text = _strip_marks(text)
    return text.strip()


# the same mapping restricted to ASCII, as a bytes table (bytes.translate is a C loop)
_ASCII_TABLE = bytes(
    32 if unicodedata.category(chr(c))[0] in "PS" or unicodedata.category(chr(c)) == "Cc" else c
    for c in range(256)
)


def simplified_words(text: str) -> list[bytes]:
    """The words of `simplify_text(text)`, UTF-8 encoded; a bytes fast path for ASCII text."""
    low = _NUMBERS.sub("0", text.lower())
    if low.isascii():
        return low.encode().translate(_ASCII_TABLE).split()
    return simplify_text(text).encode().split()


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
    """xxh64 of every word n-gram (words joined by one space) as uint64; empty if too short."""
    words = simplified_words(text)
    n = len(words) - ngram + 1
    if n <= 0:
        return np.empty(0, dtype=np.uint64)
    grams = zip(*(words[i:] for i in range(ngram)), strict=False)  # shorter tails end it
    return np.fromiter(map(xxhash.xxh64_intdigest, map(b" ".join, grams)), np.uint64, n)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of each permutation, drawn as datatrove draws them."""
    gen = np.random.RandomState(seed)
    a = gen.randint(1, MERSENNE, dtype=np.uint64, size=(1, num_perm))
    b = gen.randint(0, MERSENNE, dtype=np.uint64, size=(1, num_perm))
    return a[0], b[0]


def _mod_mersenne(y: np.ndarray) -> np.ndarray:
    """y mod (2**61 - 1) for uint64 y, by shift and mask (no division), in place."""
    r = y >> _U61
    y &= MERSENNE
    y += r
    np.subtract(y, MERSENNE, out=y, where=y >= MERSENNE)
    return y


def _mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (a bijection with good avalanche), vectorised, in place."""
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def image_digest(doc: Document) -> int:
    """One 64-bit hash of a document's image bytes in reading order (0 without images)."""
    ims = [im for im in doc.images if im is not None]
    if not ims:
        return 0
    h = xxhash.xxh64()
    for im in ims:
        h.update(xxhash.xxh3_64_digest(im))
    return h.intdigest()


class MinHasher:
    """Band hashes of documents, computed a batch at a time with numpy."""

    def __init__(self, ngram: int, bands: int, rows: int, seed: int, match_images: bool) -> None:
        self.ngram, self.bands, self.rows = ngram, bands, rows
        self.match_images = match_images
        self.a, self.b = permutations(bands * rows, seed)
        # shingles per numpy block: a [block, num_perm] uint64 temporary of ~1 MB stays in
        # cache (measured: 16 MB blocks run 3x slower per element)
        self.max_block = max(1, (1 << 20) // (8 * self.a.size))

    def min_hashes(self, shingles: np.ndarray) -> np.ndarray:
        """[num_perm] minimum of every permutation over the shingles (uint64)."""
        out = np.full(self.a.size, MERSENNE, dtype=np.uint64)
        for s in range(0, shingles.size, self.max_block):
            x = shingles[s : s + self.max_block, None]  # [n, 1]
            y = x * self.a[None, :]  # [n, num_perm], wraps mod 2**64 as datatrove's does
            y += self.b[None, :]
            np.minimum(out, _mod_mersenne(y).min(axis=0), out=out)
        return out

    def band_hashes(self, docs: Sequence[Document]) -> np.ndarray:
        """[len(docs), bands] uint64; a row of zeros marks a document without shingles."""
        out = np.zeros((len(docs), self.bands), dtype=np.uint64)
        sh = [shingle_hashes(d.text, self.ngram) for d in docs]
        have = [i for i, s in enumerate(sh) if s.size]
        if not have:
            return out
        mins = np.empty((len(have), self.a.size), dtype=np.uint64)
        lo = 0
        while lo < len(have):
            # a group of documents whose shingles fit one bounded [n, num_perm] temporary
            hi, total = lo + 1, sh[have[lo]].size
            while hi < len(have) and total + sh[have[hi]].size <= self.max_block:
                total += sh[have[hi]].size
                hi += 1
            if hi == lo + 1:
                mins[lo] = self.min_hashes(sh[have[lo]])
            else:
                group = [sh[i] for i in have[lo:hi]]
                starts = np.cumsum([0] + [g.size for g in group[:-1]])
                y = np.concatenate(group)[:, None] * self.a[None, :]  # [n, num_perm]
                y += self.b[None, :]
                mins[lo:hi] = np.minimum.reduceat(_mod_mersenne(y), starts, axis=0)
            lo = hi
        h = mins.reshape(len(have), self.bands, self.rows)
        # band hash: fold the rows through a 64-bit mixer
        bh = np.zeros((len(have), self.bands), dtype=np.uint64)
        for r in range(self.rows):
            bh ^= h[:, :, r]
            _mix64(bh)
        if self.match_images:
            img = np.array([image_digest(docs[i]) for i in have], dtype=np.uint64)
            bh ^= img[:, None]
            _mix64(bh)
        bh[bh == 0] = 1  # 0 is reserved for "no shingles"
        out[have] = bh
        return out


def near_duplicates(band_hashes: np.ndarray) -> np.ndarray:
    """Boolean [docs]: True for documents in a cluster whose first member comes earlier."""
    return near_duplicates_by_band(
        band_hashes.shape[0], band_hashes.shape[1], lambda b: band_hashes[:, b]
    )


def near_duplicates_by_band(n: int, bands: int, column: Callable[[int], np.ndarray]) -> np.ndarray:
    """As `near_duplicates`, fetching one band's [n] hashes at a time (bounded memory)."""
    valid: np.ndarray | None = None
    us, vs = [], []
    for b in range(bands):
        col = column(b)
        if valid is None:
            valid = np.flatnonzero(col != 0)  # 0 = no shingles, in every band
        col = col[valid]
        order = np.argsort(col, kind="stable")
        same = col[order[1:]] == col[order[:-1]]
        us.append(valid[order[:-1][same]])
        vs.append(valid[order[1:][same]])
        del col, order, same
    dup = np.zeros(n, dtype=bool)
    if not us:
        return dup
    u, v = np.concatenate(us), np.concatenate(vs)
    if u.size == 0:
        return dup
    dup[later_members(u, v)] = True
    return dup


@register("minhash_dedup")
class MinHashDedup(GlobalStep):
    """Drop near-duplicate documents (MinHash LSH over word n-grams), reason `near_duplicate`."""

    def __init__(
        self,
        ngram: int = 5,
        num_perm: int = 112,
        bands: int = 14,
        rows: int = 8,
        seed: int = 1,
        match_images: bool = True,
        batch_size: int = 512,
    ) -> None:
        super().__init__()
        if ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {ngram}")
        if bands < 1 or rows < 1:
            raise ValueError(f"bands and rows must be >= 1, got bands={bands} rows={rows}")
        if bands * rows != num_perm:
            raise ValueError(
                f"bands x rows must equal num_perm: {bands} x {rows} = {bands * rows} != {num_perm}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.hasher = MinHasher(ngram, bands, rows, seed, match_images)
        self.sig_size = 8 * bands
        self.batch_size = batch_size
        self._drop: np.ndarray | None = None

    def signatures(self, docs: Iterable[Document]) -> Iterator[bytes]:
        batch: list[Document] = []
        for doc in docs:
            batch.append(doc)
            if len(batch) == self.batch_size:
                yield from self._batch_sigs(batch)
                batch = []
        if batch:
            yield from self._batch_sigs(batch)

    def _batch_sigs(self, batch: list[Document]) -> Iterator[bytes]:
        bh = self.hasher.band_hashes(batch).astype("<u8")
        for row in bh:
            yield row.tobytes()

    def plan(self, per_shard: list[list[bytes]]) -> list[Any]:
        sizes = [len(s) for s in per_shard]
        bands = self.hasher.bands

        def column(b: int) -> np.ndarray:
            # band b of every document, one shard's bytes at a time: 8 bytes per document
            # in memory instead of the whole [docs, bands] matrix
            out = np.empty(sum(sizes), dtype=np.uint64)
            lo = 0
            for sigs, n in zip(per_shard, sizes, strict=True):
                if n:
                    raw = np.frombuffer(b"".join(sigs), dtype="<u8")
                    out[lo : lo + n] = raw.reshape(n, bands)[:, b]
                lo += n
            return out

        dup = near_duplicates_by_band(sum(sizes), bands, column)
        states, lo = [], 0
        for n in sizes:
            states.append(np.flatnonzero(dup[lo : lo + n]).astype(np.int64))
            lo += n
        return states

    record_dtype = np.dtype([("key", "<u8"), ("g", "<i8"), ("band", "<u2")])
    resolves_pairs = True

    def records(self, sigs: np.ndarray) -> np.ndarray:
        bh = sigs.view("<u8").reshape(-1, self.hasher.bands)
        docs = np.flatnonzero(bh[:, 0] != 0)  # no shingles: never a near-duplicate
        bands = self.hasher.bands
        recs = np.empty(docs.size * bands, self.record_dtype)
        recs["g"] = np.repeat(docs, bands)
        band = np.tile(np.arange(bands, dtype=np.uint64), docs.size)
        recs["band"] = band
        # for a fixed band, a bijection of the band hash: equal keys <=> equal hashes
        salt = _mix64((band + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15))
        recs["key"] = _mix64(bh[docs].ravel() ^ salt)
        return recs

    def plan_partition(
        self, recs: np.ndarray, part: int, rnd: int, ctx: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        order = np.lexsort([recs["g"], recs["band"], recs["key"]])
        key, band = recs["key"][order], recs["band"][order]
        same = (key[1:] == key[:-1]) & (band[1:] == band[:-1])
        del key, band
        g = recs["g"][order]
        return g[:-1][same], g[1:][same]

    def shard_state(self, sigs: np.ndarray, j: np.ndarray, v: np.ndarray) -> Any:
        return j

    def load_plan(self, state: Any) -> None:
        self._drop = np.asarray(state, dtype=np.int64)

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        docs = self.planned_stream(docs)
        assert self._drop is not None
        drop = set(self._drop.tolist())
        for i, doc in enumerate(docs):
            if i in drop:
                self.drop("near_duplicate")
            else:
                yield doc
