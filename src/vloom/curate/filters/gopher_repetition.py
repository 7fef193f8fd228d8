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
from itertools import accumulate

from vloom.curate.base import Filter
from vloom.curate.filters.text_stats import find_duplicates, words
from vloom.curate.registry import register
from vloom.doc import Document

TOP_N_GRAMS = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_N_GRAMS = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
_PARAGRAPH = re.compile(r"\n{2,}")
_LINE = re.compile(r"\n+")


def _ngrams(toks: list[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(toks[i:] for i in range(n)), strict=False))


def top_ngram_chars(toks: list[str], n: int) -> int:
    """Characters covered by the most frequent n-gram: len(" ".join(gram)) * count."""
    grams = _ngrams(toks, n)
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return (sum(map(len, gram)) + n - 1) * count


def duplicated_ngram_chars(toks: list[str], n: int, cum: list[int] | None = None) -> int:
    """Characters of n-grams that repeat an earlier one, skipping over each repeat."""
    grams = _ngrams(toks, n)
    if len(set(grams)) == len(grams):  # the common case, decided at C speed
        return 0
    if cum is None:
        cum = [0, *accumulate(map(len, toks))]
    seen: set[tuple[str, ...]] = set()
    chars, i, end = 0, 0, len(grams)
    while i < end:
        g = grams[i]
        if g in seen:
            chars += cum[i + n] - cum[i]
            i += n
        else:
            seen.add(g)
            i += 1
    return chars


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
        for n in [*self.top_n_grams, *self.dup_n_grams]:
            if n < 1:
                raise ValueError(f"n-gram sizes must be >= 1, got {n}")

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

        toks = words(text)
        for n, frac in self.top_n_grams.items():
            if top_ngram_chars(toks, n) / n_chars > frac:
                return False, f"gopher_top_{n}_gram"

        cum = [0, *accumulate(map(len, toks))]
        for n, frac in self.dup_n_grams.items():
            chars = duplicated_ngram_chars(toks, n, cum)
            if chars == 0:
                break  # no repeated n-gram means no repeated longer one either
            if chars / n_chars > frac:
                return False, f"gopher_duplicated_{n}_n_grams"
        return True, ""
