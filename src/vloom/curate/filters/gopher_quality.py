"""Gopher quality heuristics (Rae et al. 2021, "Scaling Language Models", appendix A).

Rules and reason names mirror datatrove's `GopherQualityFilter`, so ledgers from the
two tools can be compared line by line. One deliberate difference: words come from a
regex tokenizer (word characters, apostrophes inside words, single punctuation marks)
instead of nltk's `word_tokenize`, to avoid a model download at run time; and stop
words match case-insensitively ("The" counts), where datatrove's check is case-sensitive.
"""

from __future__ import annotations

import re
import string

from vloom.curate.base import Filter
from vloom.curate.registry import register
from vloom.doc import Document

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
BULLETS = ("•", "●", "◦", "‣", "▪", "-", "*")
_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
_PUNCT = frozenset(string.punctuation)


@register("gopher_quality")
class GopherQuality(Filter):
    """Drop documents that fail Gopher's quality rules; thresholds default to the paper's.

    Multimodal documents are judged on their text items only (`doc.text`). With
    `skip_if_images` (default), a document carrying images is exempt from the
    minimum word count, because image-caption pairs are legitimately short (10-30
    words); every other rule still applies, so a caption needs two stop words
    unless `min_stop_words` is lowered. A document with images and no text at all
    passes: there is nothing for text rules to judge. Set a threshold to None to
    switch its rule off.
    """

    def __init__(
        self,
        min_doc_words: int | None = 50,
        max_doc_words: int | None = 100000,
        min_avg_word_length: float | None = 3,
        max_avg_word_length: float | None = 10,
        max_symbol_word_ratio: float | None = 0.1,
        max_bullet_lines_ratio: float | None = 0.9,
        max_ellipsis_lines_ratio: float | None = 0.3,
        max_non_alpha_words_ratio: float | None = 0.8,
        min_stop_words: int | None = 2,
        stop_words: list[str] | None = None,
        skip_if_images: bool = True,
    ) -> None:
        super().__init__()
        self.min_doc_words = min_doc_words
        self.max_doc_words = max_doc_words
        self.min_avg_word_length = min_avg_word_length
        self.max_avg_word_length = max_avg_word_length
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        # the name says "max" but, as in datatrove, it is the minimum share of alphabetic words
        self.max_non_alpha_words_ratio = max_non_alpha_words_ratio
        self.min_stop_words = min_stop_words
        self.stop_words = frozenset(STOP_WORDS if stop_words is None else stop_words)
        self.skip_if_images = skip_if_images

    def filter(self, doc: Document) -> tuple[bool, str]:
        text = doc.text
        words = _TOKEN.findall(text)
        non_symbol = [w for w in words if w not in _PUNCT]
        n_words = len(non_symbol)
        has_images = self.skip_if_images and doc.n_images > 0

        if not has_images and self.min_doc_words and n_words < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and n_words > self.max_doc_words:
            return False, "gopher_long_doc"
        if n_words == 0:
            # only reachable with images (or min_doc_words off): nothing to judge
            return (True, "") if doc.n_images else (False, "gopher_short_doc")

        avg_len = sum(len(w) for w in non_symbol) / n_words
        if self.min_avg_word_length and avg_len < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and avg_len > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"

        if self.max_symbol_word_ratio:
            if text.count("#") / n_words > self.max_symbol_word_ratio:
                return False, "gopher_too_many_hashes"
            n_ellipsis = text.count("...") + text.count("…")
            if n_ellipsis / n_words > self.max_symbol_word_ratio:
                return False, "gopher_too_many_ellipsis"

        lines = text.splitlines() or [""]
        if self.max_bullet_lines_ratio:
            n_bullet = sum(s.lstrip().startswith(BULLETS) for s in lines)
            if n_bullet / len(lines) > self.max_bullet_lines_ratio:
                return False, "gopher_too_many_bullets"
        if self.max_ellipsis_lines_ratio:
            n_end = sum(s.rstrip().endswith(("...", "…")) for s in lines)
            if n_end / len(lines) > self.max_ellipsis_lines_ratio:
                return False, "gopher_too_many_end_ellipsis"

        if self.max_non_alpha_words_ratio:
            n_alpha = sum(any(c.isalpha() for c in w) for w in words)
            if n_alpha / n_words < self.max_non_alpha_words_ratio:
                return False, "gopher_below_alpha_threshold"

        if self.min_stop_words:
            n_stop = sum(w.lower() in self.stop_words for w in words)
            if n_stop < self.min_stop_words:
                return False, "gopher_enough_stop_words"
        return True, ""
