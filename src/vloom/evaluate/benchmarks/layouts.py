"""Each public benchmark's column layout, read into BenchRows.

| layout      | question              | options                        | answer            | images            |
|-------------|-----------------------|--------------------------------|-------------------|-------------------|
| vlmevalkit  | question (+ hint)     | columns A..I                   | letter or text    | image / image_path|
| mmbench     | same as vlmevalkit (HF Parquet: A-D, some null -> 2-3 options)                         |
| mmstar      | question with inlined `Options: A: .., B: ..` | (parsed)               | letter            | image             |
| mmmu        | question, <image k>   | `options` (Python-list text)   | letter; open text | image_1..image_7  |
| scienceqa   | question (+ hint)     | choices (list)                 | 0-based index     | image             |
| ai2d        | question              | options (list)                 | index or letter   | image             |
| seed        | question              | choice_a..choice_d             | letter            | image (list)      |
| pope        | question              | yes / no                       | yes or no         | image             |

`detect_layout` tells them apart by their columns (with no option columns: inlined
`Options:` is MMStar, mostly yes/no answers POPE); `layout=` overrides it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vloom.evaluate.benchmarks.files import Malformed, image_list, is_blank
from vloom.evaluate.benchmarks.row import (
    LETTERS,
    BenchRow,
    answer_index,
    category_of,
    check_options,
    renumber_images,
    require_question,
    text,
)

MMMU_IMAGES = tuple(f"image_{k}" for k in range(1, 8))
# Columns a file must have (whole-file error otherwise); options and images are per row.
REQUIRED = {
    "vlmevalkit": ("question", "answer", "A", "B"),
    "mmstar": ("question", "answer"),
    "mmmu": ("question", "answer", "options"),
    "scienceqa": ("question", "choices", "answer"),
    "ai2d": ("question", "options", "answer"),
    "seed": ("question", "answer", "choice_a", "choice_b"),
    "pope": ("question", "answer"),
}
ALIASES = {"mmbench": "vlmevalkit", "tsv": "vlmevalkit"}


def detect_layout(columns: set[str], rows: list[dict[str, Any]]) -> str:
    if "choice_a" in columns:
        return "seed"
    if "image_1" in columns or {"question_type", "options"} <= columns:
        return "mmmu"
    if "choices" in columns:
        return "scienceqa"
    if "options" in columns:
        return "ai2d"
    if {"A", "B"} <= columns:
        return "vlmevalkit"
    # No option columns: MMStar inlines its options; POPE has none and answers yes/no (a
    # stray other answer must not turn a POPE file into MMStar rows).
    if any("Options:" in text(r.get("question")) for r in rows):
        return "mmstar"
    yes_no = sum(text(r.get("answer")).lower() in ("yes", "no") for r in rows)
    return "pope" if yes_no * 2 >= len(rows) else "mmstar"


def canonical(layout: str) -> str:
    name = ALIASES.get(layout.lower(), layout.lower())
    if name not in REQUIRED:
        known = ", ".join(sorted([*REQUIRED, *ALIASES]))
        raise ValueError(f"unknown benchmark layout {layout!r}; known: {known}")
    return name


class Reader:
    """Turns the raw rows of one file into BenchRows, one layout function per benchmark."""

    def __init__(self, layout: str, base: Path, raw: list[dict[str, Any]]) -> None:
        self.layout, self.base = layout, base
        # VLMEvalKit stores a repeated image once: a later row's cell holds the index of the
        # row that has it.
        self.by_index = {
            text(r.get("index")): r.get("image") for r in raw if not is_blank(r.get("index"))
        }
        self.fn: Callable[[dict[str, Any]], BenchRow] = getattr(self, layout)

    def images(self, value: Any) -> list[bytes]:
        if isinstance(value, str) and len(value) <= 64 and value.strip() in self.by_index:
            target = self.by_index[value.strip()]
            if target is not value:
                value = target
        return image_list(value, self.base)

    def vlmevalkit(self, r: dict[str, Any]) -> BenchRow:
        cell = r.get("image") if not is_blank(r.get("image")) else r.get("image_path")
        images = self.images(cell)
        question = require_question(r.get("question"))
        if text(r.get("question_type")).lower() == "open":  # VLMEvalKit's MMMU file
            if is_blank(r.get("answer")):
                raise Malformed("missing_answer", "no answer")
            row = BenchRow(question, [], -1, images, kind="open")
            row.answers = python_list(r.get("answer")) or [text(r.get("answer"))]
        else:
            options = check_options([r.get(k) for k in LETTERS])
            row = BenchRow(question, options, answer_index(r.get("answer"), options), images)
        row.hint, row.category = text(r.get("hint")), category_of(r.get("category"))
        renumber_images(row, list(range(1, len(images) + 1)))  # <image k>: k-th of the list
        return row

    def mmstar(self, r: dict[str, Any]) -> BenchRow:
        question, options = split_inline_options(require_question(r.get("question")))
        return BenchRow(
            question=question,
            options=options,
            answer=answer_index(r.get("answer"), options),
            images=self.images(r.get("image")),
            hint=text(r.get("hint")),
            category=category_of(r.get("category")),
        )

    def mmmu(self, r: dict[str, Any]) -> BenchRow:
        numbers = [k for k, c in enumerate(MMMU_IMAGES, 1) if not is_blank(r.get(c))]
        images = [b for k in numbers for b in self.images(r.get(f"image_{k}"))]
        if len(images) != len(numbers):
            raise Malformed("missing_image", "an image_k cell holds no image")
        cat = r.get("category", r.get("subfield"))
        if is_blank(cat):  # MMMU ids are `validation_Art_Theory_12`
            cat = re.sub(r"^(dev|validation|test)_|_\d+$", "", text(r.get("id")))
        options = python_list(r.get("options"))
        kind = text(r.get("question_type")).lower()
        if kind == "open" or (not kind and not options):
            answers = python_list(r.get("answer")) or [text(r.get("answer"))]
            if not any(answers):
                raise Malformed("missing_answer", "no answer")
            row = BenchRow(require_question(r.get("question")), [], -1, images, kind="open")
            row.answers = answers
        else:
            options = check_options(options)
            row = BenchRow(
                require_question(r.get("question")),
                options,
                answer_index(r.get("answer"), options),
                images,
            )
        row.category = category_of(cat)
        renumber_images(row, numbers)
        return row

    def scienceqa(self, r: dict[str, Any]) -> BenchRow:
        options = check_options(as_list(r.get("choices")))
        return BenchRow(
            question=require_question(r.get("question")),
            options=options,
            answer=answer_index(r.get("answer"), options, numeric=True),
            images=self.images(r.get("image")),
            hint=text(r.get("hint")),
            category=category_of(r.get("subject", r.get("category"))),
        )

    def ai2d(self, r: dict[str, Any]) -> BenchRow:
        options = check_options(as_list(r.get("options")))
        return BenchRow(
            question=require_question(r.get("question")),
            options=options,
            answer=answer_index(r.get("answer"), options, numeric=True),
            images=self.images(r.get("image")),
            category=category_of(r.get("category")),
        )

    def seed(self, r: dict[str, Any]) -> BenchRow:
        options = check_options([r.get(f"choice_{k.lower()}") for k in LETTERS])
        images = self.images(r.get("image"))
        if not images and text(r.get("data_type")).lower() == "video":
            raise Malformed("video", "a video question with no frames in the file")
        return BenchRow(
            question=require_question(r.get("question")),
            options=options,
            answer=answer_index(r.get("answer"), options),
            images=images,
            category=category_of(r.get("question_type_id", r.get("category"))),
        )

    def pope(self, r: dict[str, Any]) -> BenchRow:
        a = text(r.get("answer")).lower()
        if not a:
            raise Malformed("missing_answer", "no answer")
        if a not in ("yes", "no"):
            raise Malformed("answer_not_an_option", f"answer {a[:40]!r} is not yes or no")
        return BenchRow(
            question=require_question(r.get("question")),
            options=["yes", "no"],
            answer=0 if a == "yes" else 1,
            images=self.images(r.get("image")),
            category=category_of(r.get("category")),
            kind="yesno",
        )


def as_list(value: Any) -> list[Any]:
    if is_blank(value):
        return []
    if isinstance(value, str):
        return python_list(value)
    return list(value)


def python_list(value: Any) -> list[str]:
    """MMMU's `"['a', 'b']"` cells (and real lists) as strings; [] for a blank cell."""
    if is_blank(value):
        return []
    if isinstance(value, (list, tuple)):
        return [text(v) for v in value]
    s = text(value)
    if not s.startswith("["):
        return []
    try:
        got = ast.literal_eval(s)  # a literal only: no code runs
    except (ValueError, SyntaxError):
        raise Malformed("missing_option", f"options {s[:40]!r} are not a list") from None
    return [text(v) for v in got] if isinstance(got, (list, tuple)) else []


def split_inline_options(question: str) -> tuple[str, list[str]]:
    """MMStar's `Which ...?\nOptions: A: x, B: y, C: z` -> ("Which ...?", [x, y, z]). The
    letters must come in order; the marker is `A:` (or `A.` when the row uses that)."""
    head, sep, tail = question.rpartition("Options:")
    if not sep:
        raise Malformed("missing_option", "question has no inlined `Options:`")
    mark = ":" if re.search(r"(?:^|\s)A:", tail) else "."
    starts: list[tuple[int, int]] = []  # (marker start, text start)
    pos = 0
    for letter in LETTERS:
        m = re.compile(rf"(?:^|(?<=[\s,;])){letter}{re.escape(mark)}\s*").search(tail, pos)
        if not m:
            break
        starts.append((m.start(), m.end()))
        pos = m.end()
    ends = [s for s, _ in starts[1:]] + [len(tail)]
    options = [
        tail[b:e].strip().rstrip(",;").strip() for (_, b), e in zip(starts, ends, strict=True)
    ]
    return head.strip(), check_options(options)
