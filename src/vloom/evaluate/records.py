"""Per-example evaluation records: RUN/examples/<task>.jsonl beside results.json.

A task may return its records under the reserved key `EXAMPLES` of its result; the harness
takes them out (results.json keeps only metrics) and writes one JSON line per example. What a
line holds is what the reports need: the example id, `correct` (0/1; intervals over
examples), and for multiple choice the question, its options, the model's summed log-prob per
option (`scores`), its `pick`, the right `answer`, the question type, and for an image task a
reference to the image in the eval set (`image`: {"path", "row", "column"}), which the run
report opens to draw a thumbnail. Lines are in eval-set order, so two runs evaluated on the
same set pair up line by line (run vs control, setting A vs B).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vloom.ondisk import atomic_write_text

EXAMPLES = "_examples"  # reserved result key: a task's per-example records
EXAMPLES_DIR = "examples"


def pick(scores: Sequence[float]) -> int:
    """The chosen option: the highest score, the first on a tie."""
    return max(range(len(scores)), key=lambda j: scores[j])


def image_ref(path: Path, row: int, column: str = "image") -> dict[str, Any]:
    """Where an example's image lives: row `row` of `column` in the Parquet file at `path`."""
    return {"path": str(Path(path).resolve()), "row": int(row), "column": column}


def mc_records(
    rows: Sequence[dict[str, Any]],
    scores: Sequence[Sequence[float]],
    image_path: Path | None = None,
    column: str = "image",
    row_index: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """One record per multiple-choice question; `row_index[i]` is rows[i]'s row in the file
    (default: its position), used for the image reference."""
    out = []
    for i, (r, sc) in enumerate(zip(rows, scores, strict=True)):
        choice = pick(sc)
        rec: dict[str, Any] = {
            "id": str(r.get("id", i)),
            "correct": int(choice == int(r["answer"])),
            "qtype": r.get("qtype"),
            "question": r.get("question"),
            "options": list(r["options"]),
            "scores": [round(float(s), 4) for s in sc],
            "pick": choice,
            "answer": int(r["answer"]),
        }
        if r.get("context"):
            rec["context"] = r["context"]
        if image_path is not None:
            rec["image"] = image_ref(image_path, row_index[i] if row_index else i, column)
        out.append(rec)
    return out


def open_records(
    rows: Sequence[dict[str, Any]],
    predictions: Sequence[str],
    correct: Sequence[bool],
    image_path: Path | None = None,
) -> list[dict[str, Any]]:
    """One record per generated answer: the prediction, the accepted answers, right or not."""
    out = []
    for i, (r, p, c) in enumerate(zip(rows, predictions, correct, strict=True)):
        rec: dict[str, Any] = {
            "id": str(r.get("id", i)),
            "correct": int(bool(c)),
            "qtype": r.get("qtype"),
            "question": r.get("question"),
            "prediction": p,
            "answers": [a for a in r.get("answers") or [] if a],
        }
        if image_path is not None:
            rec["image"] = image_ref(image_path, i)
        out.append(rec)
    return out


def examples_path(run_dir: str | Path, task: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in task)
    return Path(run_dir) / EXAMPLES_DIR / f"{safe}.jsonl"


def write_examples(run_dir: str | Path, examples: dict[str, list[dict[str, Any]]]) -> list[Path]:
    """Write each task's records (atomically, one file per task) and remove files of tasks no
    longer evaluated, so the directory always matches the results.json written after it."""
    paths = []
    for task, recs in examples.items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
        paths.append(atomic_write_text(examples_path(run_dir, task), text))
    d = Path(run_dir) / EXAMPLES_DIR
    if d.is_dir():
        for stale in set(d.glob("*.jsonl")) - set(paths):
            stale.unlink()
    return paths


def read_examples(run_dir: str | Path, task: str) -> list[dict[str, Any]] | None:
    """A task's records, or None when the run has none for it (an older run, a task without
    records). Unreadable lines are skipped: the report shows what is there."""
    path = examples_path(run_dir, task)
    if not path.is_file():
        return None
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out
