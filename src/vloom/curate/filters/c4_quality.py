"""C4's cleaning rules (Raffel et al. 2020, section 2.2), as in datatrove's `C4QualityFilter`.

This is a TRANSFORMING filter: besides dropping documents it rewrites the ones it
keeps. Line rules remove lines (no terminal punctuation or ending in "...", fewer
than `min_words_per_line` words, a word longer than `max_word_length`, "javascript",
cookie/terms-of-use notices) and strip Wikipedia citation marks; kept lines are
stripped and re-joined with single newlines, so blank lines go. Document rules drop
the whole page: "lorem ipsum" or "{" in a kept line, fewer than `min_num_sentences`
sentences in the kept lines, a bad word in the kept text. Removed lines are counted
by `stats()` ("lines_removed_<rule>"), which the executor sums into the ledger's
"step_stats"; they are not drops, since a line is not a document.

As in datatrove, "lorem ipsum" and "{" only drop the page when they sit in a line
that survived the line rules before them. Sentences are counted by
`text_stats.count_sentences` (datatrove uses spaCy's sentencizer).

Bad words (the C4 paper used the LDNOOBW list): a short built-in English list of
unambiguous obscenities and slurs is used by default; point `bad_words_path` at a
file with one word or phrase per line (e.g. the LDNOOBW `en` list) for the full
rule, or set `bad_words: false`. datatrove runs this as a separate filter
(`C4BadWordsFilter`, which downloads the list).

Multimodal documents: each text item is cleaned on its own and put back in place;
an item left empty is removed and images keep their order. A document with images
is exempt from the sentence minimum (captions are short) and is kept even when no
text survives (`skip_if_images`); a text-only document left with no text is dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

from vloom.curate.base import Filter
from vloom.curate.filters.text_stats import count_sentences, replace_texts, text_items
from vloom.curate.registry import register
from vloom.doc import Document

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
ELLIPSIS = "..."
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
# deliberately short: words whose every common use is obscene or a slur
DEFAULT_BAD_WORDS = (
    "blowjob", "bukkake", "bullshit", "cunt", "dildo", "faggot", "fuck", "fucked",
    "fucker", "fucking", "gangbang", "handjob", "hentai", "masturbate", "masturbation",
    "motherfucker", "nigger", "porn", "porno", "pornography", "shit", "slut", "whore",
)  # fmt: skip


def load_bad_words(path: str | Path) -> list[str]:
    """One word or phrase per line; blank lines and lines starting with '#' are skipped."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: bad words list is not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise ValueError(f"{p}: cannot read bad words list ({e.strerror})") from None
    found = [w.strip().lower() for w in raw.splitlines()]
    found = [w for w in found if w and not w.startswith("#")]
    if not found:
        raise ValueError(f"{p}: bad words list is empty")
    return found


@register("c4_quality")
class C4Quality(Filter):
    """Remove C4's bad lines from each document and drop pages that fail C4's page rules.

    Integer thresholds set to None (or -1, as in datatrove) switch their rule off.
    """

    keeps_counts = True

    def __init__(
        self,
        remove_citations: bool = True,
        filter_no_terminal_punct: bool = True,
        min_num_sentences: int | None = 5,
        min_words_per_line: int | None = 3,
        max_word_length: int | None = 1000,
        filter_lorem_ipsum: bool = True,
        filter_javascript: bool = True,
        filter_curly_bracket: bool = True,
        filter_policy: bool = True,
        bad_words: bool = True,
        bad_words_path: str | None = None,
        skip_if_images: bool = True,
    ) -> None:
        super().__init__()
        off = (None, -1)
        self.remove_citations = remove_citations
        self.filter_no_terminal_punct = filter_no_terminal_punct
        self.min_num_sentences = None if min_num_sentences in off else min_num_sentences
        self.min_words_per_line = None if min_words_per_line in off else min_words_per_line
        self.max_word_length = None if max_word_length in off else max_word_length
        self.filter_lorem_ipsum = filter_lorem_ipsum
        self.filter_javascript = filter_javascript
        self.filter_curly_bracket = filter_curly_bracket
        self.filter_policy = filter_policy
        self.skip_if_images = skip_if_images
        self.bad_words_re: re.Pattern[str] | None = None
        if bad_words:
            wordlist = (
                DEFAULT_BAD_WORDS if bad_words_path is None else load_bad_words(bad_words_path)
            )
            alts = "|".join(re.escape(w) for w in sorted(set(wordlist), key=lambda w: (-len(w), w)))
            self.bad_words_re = re.compile(rf"(?:\W|^)(?:{alts})(?:\W|$)")
        # lines are not documents: their counts go to `self.counts`, beside the ledger

    def _clean(self, text: str) -> tuple[list[str], int, str]:
        """(kept lines, sentences in them, page-drop reason or "") for one text item."""
        kept: list[str] = []
        n_sent = 0
        stats = self.counts
        for line in text.splitlines():
            line = line.strip()
            ws = line.split()
            stats["lines_total"] += 1
            longest = self.max_word_length
            # a line no longer than the limit cannot hold a longer word: skip the scan
            if longest is not None and len(line) > longest and max(map(len, ws)) > longest:
                stats["lines_removed_too_long_word"] += 1
                continue
            if self.remove_citations:
                line = CITATION.sub("", line)
            if self.filter_no_terminal_punct and (
                not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)
            ):
                stats["lines_removed_no_terminal_punct"] += 1
                continue
            if self.min_words_per_line is not None and len(ws) < self.min_words_per_line:
                stats["lines_removed_too_few_words"] += 1
                continue
            low = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in low:
                return kept, n_sent, "c4_lorem_ipsum"
            if self.filter_javascript and "javascript" in low:
                stats["lines_removed_javascript"] += 1
                continue
            if self.filter_curly_bracket and "{" in line:
                return kept, n_sent, "c4_curly_bracket"
            if self.filter_policy and any(p in low for p in POLICY_SUBSTRINGS):
                stats["lines_removed_policy"] += 1
                continue
            n_sent += count_sentences(line)
            kept.append(line)
        return kept, n_sent, ""

    def filter(self, doc: Document) -> tuple[bool, str]:
        new_texts: list[str] = []
        n_sent = 0
        for text in text_items(doc):
            kept, n, reason = self._clean(text)
            if reason:
                return False, reason
            n_sent += n
            new_texts.append("\n".join(kept))
        has_images = doc.n_images > 0
        exempt = self.skip_if_images and has_images
        if not exempt and self.min_num_sentences is not None and n_sent < self.min_num_sentences:
            return False, "c4_too_few_sentences"
        if not any(new_texts) and not exempt:
            return False, "c4_empty"
        if self.bad_words_re is not None and self.bad_words_re.search("\n".join(new_texts).lower()):
            return False, "c4_bad_words"
        old = text_items(doc)
        if new_texts != old:
            self.counts["docs_edited"] += 1
            replace_texts(doc, new_texts)
        self.counts["lines_kept"] += sum(t.count("\n") + 1 for t in new_texts if t)
        return True, ""
