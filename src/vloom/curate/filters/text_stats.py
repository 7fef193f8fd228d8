"""Text statistics shared by the text-quality filters: words, sentences, lines, duplicates.

One word tokenizer for all of them, so thresholds mean the same thing in every step.
It stands in for the spaCy English tokenizer that datatrove's filters use (no model
download, ~20x faster): words with inner apostrophes stay whole ("don't"), decimal
numbers stay whole ("3.14"), runs of dots are one token ("..."), every other
punctuation mark is its own token. Differences from spaCy that change counts: spaCy
splits "don't" into "do" + "n't" and hyphenated words into three tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from vloom.doc import Document

_WORD = re.compile(r"\d+(?:[.,:]\d+)+|\w+(?:['’]\w+)*|\.{2,}|[^\w\s]")
# a sentence ends at terminal punctuation (plus closing quotes/brackets) followed by
# space and a non-lowercase character; "e.g. the" does not split (spaCy's abbreviations)
_SENT_END = re.compile(r"[.!?…。！？]+[\"'”’)\]]*\s+(?![a-z])")

# Unicode characters with the Sentence_Terminal property (the set datatrove also uses)
TERMINAL_PUNCTUATION = frozenset(
    "!.?\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e"
    "\u0964\u0965\u104a\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u17d6\u17d9"
    "\u17da\u1803\u1809\u1944\u1945\u1aa8\u1aa9\u1aaa\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d"
    "\u1b7e\u1c3b\u1c3c\u1c7e\u1c7f\u203c\u203d\u2047\u2048\u2049\u2e2e\u2e3c\u2e53\u2e54"
    "\u3002\ua4ff\ua60e\ua60f\ua6f3\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d"
    "\uaa5e\uaa5f\uaaf0\uaaf1\uabeb\ufe52\ufe56\ufe57\uff01\uff0e\uff1f\uff61\U00010a56"
    "\U00010a57\U00010f55\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87"
    "\U00010f88\U00010f89\U00011047\U00011048\U000110be\U000110bf\U000110c0\U000110c1"
    "\U00011141\U00011142\U00011143\U000111c5\U000111c6\U000111cd\U000111de\U000111df"
    "\U00011238\U00011239\U0001123b\U0001123c\U000112a9\U0001144b\U0001144c\U000115c2"
    "\U000115c3\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce\U000115cf"
    "\U000115d0\U000115d1\U000115d2\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7"
    "\U00011641\U00011642\U0001173c\U0001173d\U0001173e\U00011944\U00011946\U00011a42"
    "\U00011a43\U00011a9b\U00011a9c\U00011c41\U00011c42\U00011ef7\U00011ef8\U00011f43"
    "\U00011f44\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44\U00016e98"
    "\U0001bc9f\U0001da88"
)


def words(text: str) -> list[str]:
    """Word tokens of `text` (punctuation marks are tokens, whitespace is not)."""
    return _WORD.findall(text)


def count_sentences(line: str) -> int:
    """Sentences in one non-empty line: terminal-punctuation boundaries, at least one."""
    if not line.strip():
        return 0
    return 1 + len(_SENT_END.findall(line.rstrip()))


def find_duplicates(items: Iterable[str]) -> tuple[int, int]:
    """(number of items seen before, their total characters): the Gopher duplicate counts."""
    seen: set[str] = set()
    n_dup = chars_dup = 0
    for x in items:
        if x in seen:
            n_dup += 1
            chars_dup += len(x)
        else:
            seen.add(x)
    return n_dup, chars_dup


def text_items(doc: Document) -> list[str]:
    """The document's text items in reading order (images skipped)."""
    return [t for t in doc.texts if t is not None]


def replace_texts(doc: Document, new_texts: list[str]) -> None:
    """Put edited text items back in place; items that became empty are removed.

    `new_texts` is aligned with `text_items(doc)`. Images keep their order; a slot
    whose text is now empty disappears, so the OBELICS one-non-null rule holds.
    """
    it = iter(new_texts)
    texts: list[str | None] = []
    images: list[bytes | None] = []
    for t, im in zip(doc.texts, doc.images, strict=True):
        if t is None:
            texts.append(None)
            images.append(im)
            continue
        new = next(it)
        if new:
            texts.append(new)
            images.append(None)
    doc.texts, doc.images = texts, images
