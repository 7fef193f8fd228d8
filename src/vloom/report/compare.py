"""Side-by-side comparison of finished runs: every eval metric and the training budget, then,
where the runs kept per-example records, each run against the first with 95% intervals (a
bootstrap over examples; the difference's a paired bootstrap over the examples both answered),
and each run's self-correction figures (two attempts) where it ran such a task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vloom.evaluate.records import read_examples
from vloom.report.headline import headline_table, headlines, resolved_sentence
from vloom.report.posttrain import delta_differences, self_correct_table
from vloom.report.runfiles import (
    RESULTS_FILE,
    eval_section,
    read_metrics,
    read_results,
    train_summary,
)
from vloom.report.tables import eval_rows, md_table

TRAIN_KEYS = ("steps", "tokens", "tokens_per_s")


def run_labels(run_dirs: list[Path]) -> list[str]:
    """Shortest distinct trailing path of each run (runs/a/control vs runs/b/control)."""
    for depth in range(1, max(len(p.parts) for p in run_dirs) + 1):
        labels = ["/".join(p.parts[-depth:]) for p in run_dirs]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in run_dirs]  # the same directory given twice


def compare_runs(run_dirs: list[str | Path]) -> str:
    """A markdown table: rows are the union of task.metric keys plus steps/tokens/tokens_per_s,
    columns the runs, blank where a run lacks a metric.

    Raises ValueError naming the directory when a run has no (or an unreadable) results.json.
    """
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("compare_runs: no run directories given")
    results: list[dict[str, Any]] = []
    for d in dirs:
        if not d.is_dir():
            raise ValueError(f"{d}: not a run directory")
        r = read_results(d)  # RunFileError (a ValueError) names a malformed file
        if r is None:
            raise ValueError(f"{d}: no {RESULTS_FILE} (evaluation has not run there)")
        results.append(r)
    labels = run_labels([d.resolve() for d in dirs])
    evals = {lb: eval_section(r) for lb, r in zip(labels, results, strict=True)}
    rows: list[list[Any]] = []
    for key in eval_rows(evals):
        task, metric = key.split(".", 1)
        rows.append([key, *(evals[lb].get(task, {}).get(metric) for lb in labels)])
    summaries = [train_summary(r, read_metrics(d)[0]) for d, r in zip(dirs, results, strict=True)]
    for key in TRAIN_KEYS:
        rows.append([f"train.{key}", *(s.get(key) for s in summaries)])
    out = md_table(["metric", *labels], rows)
    examples = {
        lb: {t: recs for t in evals[lb] if (recs := read_examples(d, t))}
        for lb, d in zip(labels, dirs, strict=True)
    }
    for lb in labels[1:]:
        pair = {lb: evals[lb], labels[0]: evals[labels[0]]}
        rows_ = [h for h in headlines(pair, examples) if h.diff_ci is not None]
        if rows_:
            out += f"\n\n### {lb} against {labels[0]}\n\n" + headline_table(rows_, list(pair))
            out += "\n\n" + resolved_sentence(rows_, list(pair))
    table, said = self_correct_table(evals, examples)
    if table:  # SCoRe's figures side by side: attempt 1, attempt 2, delta and the flips
        out += "\n\n### Self-correction\n\n" + table
        out += "\n\n" + "; ".join(said) + "." if said else ""
        diffs = delta_differences(evals, examples)
        out += "\n\n" + diffs if diffs else ""
    return out
