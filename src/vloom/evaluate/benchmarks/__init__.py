"""Public multiple-choice benchmarks from local files (MMBench, MMStar, MMMU, ScienceQA-IMG,
AI2D, SEED-Bench, POPE, and VLMEvalKit's TSV layout of any of them).

`load_benchmark` reads a file into BenchRows (2-9 options, a letter or text answer, any
number of images, an optional hint). A row that cannot be scored (missing image, missing
option, answer beyond its options, ...) is counted under its reason and left out, so one bad
row never costs the rest of the file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vloom.evaluate.benchmarks.files import Malformed, read_rows
from vloom.evaluate.benchmarks.layouts import REQUIRED, Reader, canonical, detect_layout
from vloom.evaluate.benchmarks.row import LETTERS, BenchRow, category_of

__all__ = ["LETTERS", "Benchmark", "BenchRow", "Malformed", "load_benchmark"]


@dataclass
class Benchmark:
    layout: str
    rows: list[BenchRow]
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> rows left out
    first_skip: dict[str, str] = field(default_factory=dict)  # reason -> first row's message

    def skip(self, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        self.first_skip.setdefault(reason, message)


def load_benchmark(
    path: str | Path,
    layout: str | None = None,
    limit: int | None = None,
    category: str | None = None,
) -> Benchmark:
    """The scorable rows of a benchmark file (the first `limit` rows of the file, if given).
    `category` names the column rows are grouped by (e.g. MMBench's `l2-category`) instead of
    the layout's own (category; subject for ScienceQA; question_type_id for SEED-Bench)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: benchmark file not found")
    raw = read_rows(path)
    if not raw:
        raise ValueError(f"{path}: no rows")
    columns = set().union(*(r.keys() for r in raw))
    name = canonical(layout) if layout else detect_layout(columns, raw)
    missing = [c for c in REQUIRED[name] if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} for layout {name!r}")
    if category is not None and category not in columns:
        raise ValueError(f"{path}: no column {category!r} to group categories by")
    reader = Reader(name, path.parent, raw)
    bench = Benchmark(name, [])
    for i, r in enumerate(raw[:limit] if limit else raw):
        key = r.get("index", r.get("id", r.get("question_id")))
        where = f"{path}: row {i}" + (f" ({key})" if key is not None and key != "" else "")
        try:
            row = reader.fn(r)
        except Malformed as e:
            bench.skip(e.reason, f"{where}: {e}")
            continue
        row.where = where
        if category is not None:
            row.category = category_of(r.get(category))
        bench.rows.append(row)
    return bench
