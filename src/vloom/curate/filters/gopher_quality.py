"""Gopher quality heuristics (Rae et al. 2021, "Scaling Language Models", appendix A).

Rules, thresholds and reason names follow datatrove's `GopherQualityFilter`, so ledgers
from the two tools can be compared line by line:
- words are the tokens of `text_stats.words` (spaCy's English tokenizer rules, which
  datatrove uses, re-implemented: no spaCy needed); "symbol words" are tokens made
  only of punctuation;
- word count and mean word length use the non-symbol words (the paper's words);
- the hash / ellipsis ratios and the alphabetic-word share divide by ALL tokens,
  punctuation included, as datatrove does (punctuation-heavy text scores lower);
- the stop-word rule counts DISTINCT stop words present ("at least two of the
  following English words"), matched case-sensitively like datatrove ("The" is not
  "the"); `stop_words_ignore_case=True` matches any case;
- bullet lines start with "•" or "-" (datatrove's set; `bullets` changes it).
"""

from __future__ import annotations

from vloom.curate.base import Filter
from vloom.curate.filters.text_stats import PUNCTUATION
from vloom.curate.filters.text_stats import words as split_words
from vloom.curate.registry import register
from vloom.doc import Document

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
BULLETS = ("•", "-")


@register("gopher_quality")
class GopherQuality(Filter):
    """Drop documents that fail Gopher's quality rules; thresholds default to the paper's.

    Multimodal documents are judged on their text items only (`doc.text`). With
    `skip_if_images` (default), a document carrying images is exempt from the
    minimum word count, because image-caption pairs are legitimately short (10-30
    words); every other rule still applies, so a caption needs two distinct stop words
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
        stop_words_ignore_case: bool = False,
        bullets: list[str] | None = None,
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
        for name, value in (("stop_words", stop_words), ("bullets", bullets)):
            if isinstance(value, str):  # a bare string would become a set of characters
                raise ValueError(f"gopher_quality: {name} must be a list of strings, got {value!r}")
        self.stop_words_ignore_case = stop_words_ignore_case
        sw = STOP_WORDS if stop_words is None else stop_words
        self.stop_words = (
            frozenset(w.lower() for w in sw) if stop_words_ignore_case else frozenset(sw)
        )
        self.bullets = tuple(BULLETS if bullets is None else bullets)
        self.skip_if_images = skip_if_images

    def filter(self, doc: Document) -> tuple[bool, str]:
        text = doc.text
        words = split_words(text)
        non_symbol = [w for w in words if not PUNCTUATION.issuperset(w)]
        n_words = len(non_symbol)
        n_tokens = len(words)
        has_images = self.skip_if_images and doc.n_images > 0

        if not has_images and self.min_doc_words and n_words < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and n_words > self.max_doc_words:
            return False, "gopher_long_doc"
        if n_words == 0:
            # only reachable with images (or min_doc_words off): nothing to judge
            return (True, "") if doc.n_images else (False, "gopher_short_doc")

        avg_len = sum(map(len, non_symbol)) / n_words
        if self.min_avg_word_length and avg_len < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and avg_len > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"

        # ratios per token, punctuation included (datatrove's denominator)
        if self.max_symbol_word_ratio:
            if text.count("#") / n_tokens > self.max_symbol_word_ratio:
                return False, "gopher_too_many_hashes"
            n_ellipsis = text.count("...") + text.count("…")
            if n_ellipsis / n_tokens > self.max_symbol_word_ratio:
                return False, "gopher_too_many_ellipsis"

        lines = text.splitlines() or [""]
        if self.max_bullet_lines_ratio:
            n_bullet = sum(s.lstrip().startswith(self.bullets) for s in lines)
            if n_bullet / len(lines) > self.max_bullet_lines_ratio:
                return False, "gopher_too_many_bullets"
        if self.max_ellipsis_lines_ratio:
            n_end = sum(s.rstrip().endswith(("...", "…")) for s in lines)
            if n_end / len(lines) > self.max_ellipsis_lines_ratio:
                return False, "gopher_too_many_end_ellipsis"

        if self.max_non_alpha_words_ratio:
            n_alpha = sum(any(c.isalpha() for c in w) for w in words)
            if n_alpha / n_tokens < self.max_non_alpha_words_ratio:
                return False, "gopher_below_alpha_threshold"

        if self.min_stop_words:
            present = {w.lower() for w in words} if self.stop_words_ignore_case else set(words)
            if len(self.stop_words & present) < self.min_stop_words:
                return False, "gopher_enough_stop_words"
        return True, ""
