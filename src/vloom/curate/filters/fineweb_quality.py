"""FineWeb's line-level quality rules (Penedo et al. 2024, the FineWeb blog post).

Semantics follow datatrove's `FineWebQualityFilter`: lines are the non-blank pieces
of the text split on "\\n" (not stripped), a line "ends in punctuation" if its last
character is a Unicode sentence terminator, short lines have <= `short_line_length`
characters, duplicated-line characters are over the text without newlines, and the
list ratio is newlines per word. One default differs on purpose: datatrove's code
has `char_duplicates_ratio=0.01`, the published rule is 0.1; we use 0.1.

Multimodal documents: lines come from every text item; newlines are counted inside
the items only, so the blank lines that separate items around images do not make a
document look like a list. A document with images and no text passes.
"""

from __future__ import annotations

from vloom.curate.base import Filter
from vloom.curate.filters.text_stats import TERMINAL_PUNCTUATION, find_duplicates, text_items, words
from vloom.curate.registry import register
from vloom.doc import Document


@register("fineweb_quality")
class FineWebQuality(Filter):
    """Drop documents whose lines look like menus, lists or boilerplate (FineWeb's rules).

    Set a threshold to None to switch its rule off. With `line_punct_exclude_zero` a
    document where no line ends in punctuation is exempt from the punctuation rule.
    """

    def __init__(
        self,
        line_punct_thr: float | None = 0.12,
        line_punct_exclude_zero: bool = False,
        stop_chars: str | None = None,
        short_line_thr: float | None = 0.67,
        short_line_length: int = 30,
        char_duplicates_ratio: float | None = 0.1,
        new_line_ratio: float | None = 0.3,
    ) -> None:
        super().__init__()
        self.line_punct_thr = line_punct_thr
        self.line_punct_exclude_zero = line_punct_exclude_zero
        if stop_chars == "":
            raise ValueError("stop_chars is empty: no line could end in punctuation")
        self.stop_chars = tuple(TERMINAL_PUNCTUATION if stop_chars is None else stop_chars)
        self.short_line_thr = short_line_thr
        self.short_line_length = short_line_length
        self.char_duplicates_ratio = char_duplicates_ratio
        self.new_line_ratio = new_line_ratio

    def filter(self, doc: Document) -> tuple[bool, str]:
        texts = text_items(doc)
        lines = [ln for t in texts for ln in t.split("\n") if ln.strip()]
        if not lines:
            return (True, "") if doc.n_images else (False, "fineweb_empty")

        if self.line_punct_thr is not None:
            ratio = sum(ln.endswith(self.stop_chars) for ln in lines) / len(lines)
            if ratio < self.line_punct_thr and not (ratio == 0 and self.line_punct_exclude_zero):
                return False, "fineweb_line_punct_ratio"

        if self.short_line_thr is not None:
            ratio = sum(len(ln) <= self.short_line_length for ln in lines) / len(lines)
            if ratio > self.short_line_thr:
                return False, "fineweb_short_line_ratio"

        if self.char_duplicates_ratio is not None:
            n_chars = sum(len(t) - t.count("\n") for t in texts)
            if find_duplicates(lines)[1] / n_chars > self.char_duplicates_ratio:
                return False, "fineweb_char_dup_ratio"

        if self.new_line_ratio is not None:
            n_words = sum(len(words(t)) for t in texts)
            n_newlines = sum(t.count("\n") for t in texts)
            if n_newlines / max(n_words, 1) > self.new_line_ratio:
                return False, "fineweb_list_ratio"
        return True, ""
