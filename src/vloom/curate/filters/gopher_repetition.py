"""Gopher repetition rules (Rae et al. 2021, "Scaling Language Models", table A1).

Semantics follow datatrove's `GopherRepetitionFilter`, so ledgers compare line by
line: paragraphs split on two or more newlines, lines on one or more; fractions of
characters are over the whole text; "top n-gram" is the most frequent n-gram's
characters times its count (words joined by spaces); "duplicated n-gram" characters
are counted greedily left to right, skipping past each repeat (words joined without
spaces). Differences: words come from `text_stats.words` (not spaCy), and n-grams
are compared as word tuples, where datatrove compares the joined string (so for it
"ab c" and "a bc" are the same 2-gram; here they are not).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from vloom.curate.base import Filter
from vloom.curate.filters.text_stats import find_duplicates, words
from vloom.curate.registry import register
from vloom.doc import Document

TOP_N_GRAMS = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_N_GRAMS = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
_PARAGRAPH = re.compile(r"\n{2,}")
_LINE = re.compile(r"\n+")


NUMPY_FROM = 128  # tokens; below this numpy's per-call overhead costs more than it saves


class SmallNGrams:
    """N-gram statistics in plain Python (word tuples): the fast path for short texts."""

    def __init__(self, toks: list[str]) -> None:
        self.toks = toks

    def _grams(self, n: int) -> list[tuple[str, ...]]:
        return list(zip(*(self.toks[i:] for i in range(n)), strict=False))

    def top(self, n: int) -> int:
        """Characters covered by the most frequent n-gram: len(" ".join(gram)) * count."""
        grams = self._grams(n)
        if not grams:
            return 0
        gram, count = Counter(grams).most_common(1)[0]
        return (sum(map(len, gram)) + n - 1) * count

    def dup(self, n: int) -> int:
        """Characters of n-grams that repeat an earlier one, skipping over each repeat."""
        grams = self._grams(n)
        if len(set(grams)) == len(grams):
            return 0
        seen: set[tuple[str, ...]] = set()
        chars, i, end = 0, 0, len(grams)
        while i < end:
            g = grams[i]
            if g in seen:
                chars += sum(map(len, g))
                i += n
            else:
                seen.add(g)
                i += 1
        return chars


class NGrams:
    """The same statistics with dense integer n-gram ids built level by level in numpy.

    Level n maps each window toks[i:i+n] to an id (equal windows, equal ids: exact,
    no hashing), from level n-1's ids paired with the next word's id. `np.unique`
    does the grouping in C; only positions of repeated n-grams reach Python.
    """

    def __init__(self, toks: list[str]) -> None:
        index = {w: i for i, w in enumerate(dict.fromkeys(toks))}
        self.ids = np.fromiter(map(index.__getitem__, toks), dtype=np.int64, count=len(toks))
        self.cum = np.zeros(len(toks) + 1, dtype=np.int64)  # cum[i]: chars of toks[:i]
        np.cumsum(np.fromiter(map(len, toks), dtype=np.int64, count=len(toks)), out=self.cum[1:])
        self.n, self.inv = 1, self.ids
        self._vocab = max(len(index), 1)

    def level(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(id per window, first window of each id, count of each id) for n-grams."""
        if n < self.n:
            self.n, self.inv = 1, self.ids
        while self.n < n:
            self.n += 1
            tail = self.ids[self.n - 1 :]
            self.inv = self.inv[:-1] * self._vocab + tail  # < len(toks) * vocab: fits int64
        _, first, inv, counts = np.unique(
            self.inv, return_index=True, return_inverse=True, return_counts=True
        )
        self.inv = inv.astype(np.int64, copy=False)  # dense again for the next level
        return self.inv, first, counts

    def _chars(self, start: int, n: int) -> int:
        return int(self.cum[start + n] - self.cum[start])

    def top(self, n: int) -> int:
        """As `SmallNGrams.top`; among equally frequent n-grams the first seen counts."""
        if len(self.ids) < n:
            return 0
        _, first, counts = self.level(n)
        top = counts.max()
        start = int(first[counts == top].min())
        return (self._chars(start, n) + n - 1) * int(top)

    def dup(self, n: int) -> int:
        """As `SmallNGrams.dup`. Windows whose n-gram occurs once cannot change the
        result (they are never looked up), so only repeated n-grams are visited."""
        if len(self.ids) < n:
            return 0
        inv, _, counts = self.level(n)
        if counts.max() < 2:
            return 0
        pos = np.flatnonzero(counts[inv] > 1)
        seen: set[int] = set()
        chars, skip_until = 0, 0
        for i, g in zip(pos.tolist(), inv[pos].tolist(), strict=True):
            if i < skip_until:
                continue
            if g in seen:
                chars += self._chars(i, n)
                skip_until = i + n
            else:
                seen.add(g)
        return chars


def ngrams(toks: list[str]) -> SmallNGrams | NGrams:
    """N-gram statistics for a token list, by the implementation fastest at its length."""
    return SmallNGrams(toks) if len(toks) < NUMPY_FROM else NGrams(toks)


@register("gopher_repetition")
class GopherRepetition(Filter):
    """Drop documents with too much repeated text; thresholds default to the paper's.

    `top_n_grams` and `dup_n_grams` map n to the largest allowed character fraction;
    give a mapping to replace the defaults, `{}` to switch those rules off. Any other
    threshold set to None switches its rule off. Multimodal documents are judged on
    their text items only (joined by blank lines, so each item is a paragraph); a
    document with images and no text passes, a text-only empty one is dropped.
    """

    def __init__(
        self,
        dup_line_frac: float | None = 0.3,
        dup_para_frac: float | None = 0.3,
        dup_line_char_frac: float | None = 0.2,
        dup_para_char_frac: float | None = 0.2,
        top_n_grams: dict[int, float] | None = None,
        dup_n_grams: dict[int, float] | None = None,
    ) -> None:
        super().__init__()
        self.dup_line_frac = dup_line_frac
        self.dup_para_frac = dup_para_frac
        self.dup_line_char_frac = dup_line_char_frac
        self.dup_para_char_frac = dup_para_char_frac
        self.top_n_grams = dict(
            sorted((TOP_N_GRAMS if top_n_grams is None else top_n_grams).items())
        )
        self.dup_n_grams = dict(
            sorted((DUP_N_GRAMS if dup_n_grams is None else dup_n_grams).items())
        )
        for param, table in (("top_n_grams", self.top_n_grams), ("dup_n_grams", self.dup_n_grams)):
            if any(n < 1 for n in table):
                raise ValueError(f"{param}: n-gram sizes must be >= 1, got {sorted(table)}")

    def filter(self, doc: Document) -> tuple[bool, str]:
        text = doc.text
        if not text:
            return (True, "") if doc.n_images else (False, "gopher_empty")
        n_chars = len(text)

        paragraphs = _PARAGRAPH.split(text.strip())
        n_dup, dup_chars = find_duplicates(paragraphs)
        if self.dup_para_frac and n_dup / len(paragraphs) > self.dup_para_frac:
            return False, "gopher_dup_para_frac"
        if self.dup_para_char_frac and dup_chars / n_chars > self.dup_para_char_frac:
            return False, "gopher_dup_para_char_frac"

        lines = _LINE.split(text)
        n_dup, dup_chars = find_duplicates(lines)
        if self.dup_line_frac and n_dup / len(lines) > self.dup_line_frac:
            return False, "gopher_dup_line_frac"
        if self.dup_line_char_frac and dup_chars / n_chars > self.dup_line_char_frac:
            return False, "gopher_dup_line_char_frac"

        grams = ngrams(words(text))
        for n, frac in self.top_n_grams.items():
            if grams.top(n) / n_chars > frac:
                return False, f"gopher_top_{n}_gram"

        for n, frac in self.dup_n_grams.items():
            chars = grams.dup(n)
            if chars == 0:
                break  # no repeated n-gram means no repeated longer one either
            if chars / n_chars > frac:
                return False, f"gopher_duplicated_{n}_n_grams"
        return True, ""
