"""The run report's answer: each task's headline metric for the run and its text-only control,
with 95% intervals from the per-example records, and the difference run - control.

An accuracy's interval is a bootstrap over its examples; the difference's is a paired bootstrap
over the examples both runs answered (the same eval set, matched by id), which removes the
examples' shared difficulty. A task without records (an older run, a loss metric) shows its
value without an interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vloom.report.plots import main_metric
from vloom.report.stats import Interval, bootstrap_ci, excludes_zero, paired_bootstrap_ci
from vloom.report.tables import fmt, md_table

LEVEL = 0.95


@dataclass
class Headline:
    """One task's headline metric across runs."""

    task: str
    metric: str
    values: dict[str, float | None]
    ci: dict[str, Interval | None] = field(default_factory=dict)
    n: dict[str, int | None] = field(default_factory=dict)
    diff: float | None = None  # first run - second run, on the paired examples
    diff_ci: Interval | None = None
    n_pairs: int = 0
    label: str | None = None  # the metric as the table names it, when that says more


def paired_records(
    a: list[dict[str, Any]], b: list[dict[str, Any]]
) -> list[tuple[Any, float, float]]:
    """(key, correct in a, correct in b) of the examples both record lists hold: matched by
    id when ids are unique in both (key: the id), else by position (key: the index)."""
    ids_a, ids_b = [r.get("id") for r in a], [r.get("id") for r in b]
    if len(set(ids_a)) == len(ids_a) and len(set(ids_b)) == len(ids_b):
        by_b = {r.get("id"): r for r in b}
        return [
            (r["id"], float(r["correct"]), float(by_b[r["id"]]["correct"]))
            for r in a
            if r.get("id") in by_b
        ]
    n = min(len(a), len(b))
    return [(i, float(a[i]["correct"]), float(b[i]["correct"])) for i in range(n)]


def paired_correct(
    a: list[dict[str, Any]], b: list[dict[str, Any]]
) -> tuple[list[float], list[float]]:
    """`correct` of the examples both record lists hold, as two aligned lists."""
    pairs = paired_records(a, b)
    return [x for _, x, _ in pairs], [y for _, _, y in pairs]


def _scored(recs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [r for r in recs or [] if isinstance(r.get("correct"), (int, float))]


def headlines(
    evals: dict[str, dict[str, dict[str, Any]]],
    examples: dict[str, dict[str, list[dict[str, Any]]]],
) -> list[Headline]:
    """Headline rows, tasks sorted; `evals[run][task]` metrics, `examples[run][task]` records.
    With exactly two runs the difference is the first minus the second."""
    runs = list(evals)
    # accuracy-like tasks (the ones with intervals) first, then losses and perplexities
    tasks = sorted(
        {t for ev in evals.values() for t in ev},
        key=lambda t: (not any("accuracy" in ev.get(t, {}) for ev in evals.values()), t),
    )
    out = []
    for task in tasks:
        metric = next(
            (m for ev in evals.values() if (m := main_metric(ev.get(task, {}))) is not None), None
        )
        if metric is None:
            continue
        h = Headline(task, metric, {r: evals[r].get(task, {}).get(metric) for r in runs})
        if metric == "accuracy" and any("accuracy_t2" in ev.get(task, {}) for ev in evals.values()):
            h.label = "accuracy (attempt 2)"  # a self-correction task: the answer it settles on
        recs = {r: _scored(examples.get(r, {}).get(task)) for r in runs}
        for r in runs:
            if metric in ("accuracy", "exact_match") and recs[r]:
                h.ci[r] = bootstrap_ci([x["correct"] for x in recs[r]], level=LEVEL)
                h.n[r] = len(recs[r])
            else:
                h.n[r] = evals[r].get(task, {}).get("n")
        if len(runs) == 2:
            a, b = (h.values[r] for r in runs)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                h.diff = float(a) - float(b)
            if all(r in h.ci for r in runs):
                xa, xb = paired_correct(recs[runs[0]], recs[runs[1]])
                if xa:
                    h.diff = sum(xa) / len(xa) - sum(xb) / len(xb)
                    h.diff_ci = paired_bootstrap_ci(xa, xb, level=LEVEL)
                    h.n_pairs = len(xa)
        out.append(h)
    return out


def chance_levels(examples: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, float]:
    """Each multiple-choice task's chance accuracy, mean of 1 / number of options."""
    out: dict[str, float] = {}
    for tasks in examples.values():
        for task, recs in tasks.items():
            k = [len(r["options"]) for r in recs if r.get("options")]
            if k and task not in out:
                out[task] = sum(1 / n for n in k) / len(k)
    return out


def type_intervals(
    examples: dict[str, dict[str, list[dict[str, Any]]]],
) -> dict[str, dict[str, dict[str, Interval]]]:
    """`[run][task][qtype]` 95% bootstrap intervals of accuracy per question type (and "all")
    from the per-example records, for the per-type tables."""
    out: dict[str, dict[str, dict[str, Interval]]] = {}
    for run, tasks in examples.items():
        for task, recs in tasks.items():
            recs = _scored(recs)
            if not recs:
                continue
            by: dict[str, list[float]] = {"all": [float(r["correct"]) for r in recs]}
            for r in recs:
                if r.get("qtype"):
                    by.setdefault(str(r["qtype"]), []).append(float(r["correct"]))
            out.setdefault(run, {})[task] = {q: bootstrap_ci(v, level=LEVEL) for q, v in by.items()}
    return out


def _with_ci(v: float | None, ci: Interval | None, signed: bool = False) -> str:
    if v is None or not isinstance(v, (int, float)):
        return ""
    s = fmt(float(v))
    if signed and not s.startswith("-") and math.isfinite(v) and v != 0:
        s = "+" + s
    if ci is None:
        return s
    return f"{s} [{fmt(round(ci[0], 4))}, {fmt(round(ci[1], 4))}]"


def headline_table(rows: list[Headline], runs: list[str]) -> str:
    """task | metric | each run [95% interval] | difference [paired interval] | examples."""
    header = ["task", "metric", *runs]
    two = len(runs) == 2
    if two:
        header.append(f"{runs[0]} - {runs[1]}")
    header.append("examples")
    body = []
    for h in rows:
        cells: list[Any] = [h.task, h.label or h.metric]
        cells += [_with_ci(h.values[r], h.ci.get(r)) for r in runs]
        if two:
            cells.append(_with_ci(h.diff, h.diff_ci, signed=True))
        ns = sorted({n for n in h.n.values() if isinstance(n, int)})
        cells.append(", ".join(str(n) for n in ns))
        body.append(cells)
    return md_table(header, body)


def resolved_sentence(rows: list[Headline], runs: list[str]) -> str:
    """Which run - control differences the paired intervals resolve (exclude 0), in words."""
    if len(runs) != 2:
        return ""
    with_ci = [h for h in rows if h.diff_ci is not None]
    if not with_ci:
        return "No task has per-example records for both runs: no difference has an interval."
    yes = [h for h in with_ci if excludes_zero(h.diff_ci)]
    no = [h for h in with_ci if not excludes_zero(h.diff_ci)]
    level = f"{int(LEVEL * 100)}%"
    parts = []
    if yes:
        parts.append(
            f"{runs[0]} - {runs[1]} is resolved (its {level} paired interval excludes 0) on "
            + ", ".join(f"{h.task} ({'+' if h.diff > 0 else ''}{fmt(h.diff)})" for h in yes)
        )
    if no:
        parts.append(
            ("and " if yes else f"{runs[0]} - {runs[1]} is ")
            + "not resolved (the interval holds 0) on "
            + ", ".join(h.task for h in no)
        )
    return "; ".join(parts) + "."
