"""The one row every benchmark layout becomes, and the option/answer rules they share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from vloom.evaluate.benchmarks.files import Malformed, is_blank

LETTERS = tuple("ABCDEFGHI")  # up to nine options, as MMMU has
KINDS = ("choice", "yesno", "open")
# `<image 2>` (MMMU) marks where an image sits in a question or option; numbers are 1-based
# into BenchRow.images once a layout has read the row.
PLACEHOLDER = re.compile(r"<image (\d+)>")


@dataclass(slots=True)
class BenchRow:
    question: str  # without inlined options; may hold <image k> placeholders
    options: list[str]  # 2..9 for "choice", ["yes", "no"] for "yesno", [] for "open"
    answer: int  # index into options (-1 for an open row)
    images: list[bytes] = field(default_factory=list)
    hint: str = ""
    category: str = ""  # "" when the file has none
    kind: str = "choice"
    answers: list[str] = field(default_factory=list)  # accepted texts of an open row
    where: str = ""  # file and row, for messages


def text(value: Any) -> str:
    return "" if is_blank(value) else str(value).strip()


def category_of(value: Any) -> str:
    """A category as a results-key suffix: `Science & Tech` -> `Science_&_Tech`."""
    return "_".join(text(value).split())


def require_question(value: Any) -> str:
    q = text(value)
    if not q:
        raise Malformed("missing_question", "empty question")
    return q


def check_options(options: list[Any]) -> list[str]:
    """Options in letter order: trailing blanks end the list (MMBench's 2-3 option rows); a
    blank before a filled one, or fewer than two, is a missing option."""
    texts = [text(o) for o in options]
    while texts and not texts[-1]:
        texts.pop()
    if len(texts) > len(LETTERS):
        raise Malformed("too_many_options", f"{len(texts)} options; at most {len(LETTERS)}")
    gaps = [LETTERS[i] for i, t in enumerate(texts) if not t]
    if gaps:
        raise Malformed("missing_option", f"answer option {gaps[0]} is missing")
    if len(texts) < 2:
        raise Malformed("missing_option", f"{len(texts)} option(s); a question needs two")
    return texts


def answer_index(value: Any, options: list[str], numeric: bool = False) -> int:
    """The answer as an index into options: a letter (`B`, `(B)`, `B.`), with `numeric` a
    0-based index (ScienceQA, AI2D), or else the text of one option."""
    if isinstance(value, bool) or is_blank(value):
        raise Malformed("missing_answer", "no answer")
    if isinstance(value, (int, float)) or (numeric and text(value).isdigit()):
        i = int(value)
        if not 0 <= i < len(options):
            raise Malformed(
                "answer_beyond_options", f"answer index {i} with {len(options)} options"
            )
        return i
    a = text(value)
    letter = a.strip("().").upper()
    if len(letter) == 1 and letter in LETTERS:
        i = LETTERS.index(letter)
        if i >= len(options):
            raise Malformed(
                "answer_beyond_options", f"answer {a!r} with options A-{LETTERS[len(options) - 1]}"
            )
        return i
    folded = [o.casefold() for o in options]
    if a.casefold() in folded:
        return folded.index(a.casefold())
    raise Malformed("answer_not_an_option", f"answer {a[:40]!r} is neither a letter nor an option")


def renumber_images(row: BenchRow, numbers: list[int]) -> None:
    """Point placeholders at positions in row.images, which holds the images numbered
    `numbers` in the file (MMMU's image_1..image_7 with gaps); one that names an absent image
    makes the row malformed."""
    pos = {n: i + 1 for i, n in enumerate(numbers)}

    def sub(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n not in pos:
            raise Malformed(
                "missing_image", f"<image {n}> is referenced but the row has no image {n}"
            )
        return f"<image {pos[n]}>"

    row.question = PLACEHOLDER.sub(sub, row.question)
    row.options = [PLACEHOLDER.sub(sub, o) for o in row.options]
