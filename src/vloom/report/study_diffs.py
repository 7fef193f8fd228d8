"""Paired differences between a study's settings, with intervals from seeds and from examples.

Every setting trains with the same seeds and sees the same data order for a given seed, and
every run is evaluated on the same held-out examples, so setting A seed s pairs with setting B
seed s, and example i of one run pairs with example i of the other. Two intervals per
difference (95%):
- seeds: a Student t interval over the per-seed differences (what retraining would change);
- examples: a paired bootstrap over the eval examples, each example's correctness averaged
  over the seeds both settings finished (what another draw of eval questions would change).
A difference is resolved by an interval that excludes 0. Averages over tasks get a seed
interval only (their examples come from several sets).
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from typing import Any

from vloom.evaluate.records import read_examples
from vloom.report.headline import paired_records
from vloom.report.stats import (
    Interval,
    excludes_zero,
    paired_bootstrap_ci,
    standard_error,
    t_interval,
)
from vloom.report.study_table import (
    TEXT_AVG,
    VL_AVG,
    group_runs,
    headline_score,
    run_scores,
    setting_label,
)
from vloom.report.tables import fmt, md_table

LEVEL = 0.95
MAX_ALL_PAIRS = 4  # up to this many settings every pair is compared; beyond, each vs the first
SE_TARGET = 0.015  # the bound on an accuracy's example standard error


@dataclass
class Diff:
    """metric of setting `a` minus setting `b`, paired by seed and by example."""

    key: str  # "task.metric" or an average
    a: str
    b: str
    mean_a: float
    mean_b: float
    diff: float  # mean over the paired seeds of (a - b)
    seeds: list[Any]
    seed_ci: Interval
    example_ci: Interval | None = None
    n_examples: int = 0

    @property
    def by_seeds(self) -> bool:
        return excludes_zero(self.seed_ci)

    @property
    def by_examples(self) -> bool:
        return self.example_ci is not None and excludes_zero(self.example_ci)

    def verdict(self) -> str:
        if self.by_seeds and self.by_examples:
            return "resolved (seeds and examples)"
        if self.by_seeds:
            return "resolved by seeds only"
        if self.by_examples:
            return "resolved by examples only"
        return "not resolved"


def _settings(runs: list[dict[str, Any]], swept: list[str]) -> list[tuple[str, dict[Any, dict]]]:
    """(label, {seed: finished run}) per setting, in grid order."""
    out = []
    for members in group_runs(runs, swept).values():
        done = {r["settings"].get("seed"): r for r in members if r.get("eval")}
        out.append((setting_label(members[0]["settings"], swept), done))
    return out


def _task_metric(runs: list[dict[str, Any]]) -> dict[str, str]:
    """Each task's accuracy-like headline metric, over all finished runs."""
    out: dict[str, str] = {}
    for r in runs:
        for task, metrics in (r.get("eval") or {}).items():
            s = headline_score(metrics) if isinstance(metrics, dict) else None
            if s is not None:
                out.setdefault(task, s[0])
    return dict(sorted(out.items()))


def _example_ci(
    task: str, a: dict[Any, dict], b: dict[Any, dict], seeds: list[Any]
) -> tuple[Interval | None, int]:
    """Paired bootstrap over examples, each example's correctness averaged over `seeds`."""
    sums: dict[Any, list[float]] = {}
    for s in seeds:
        ra, rb = read_examples(a[s]["dir"], task), read_examples(b[s]["dir"], task)
        if not ra or not rb:
            return None, 0
        for i, va, vb in paired_records(ra, rb):
            acc = sums.setdefault(i, [0.0, 0.0, 0])
            acc[0] += va
            acc[1] += vb
            acc[2] += 1
    full = [v for v in sums.values() if v[2] == len(seeds)]  # examples every seed answered
    if not full:
        return None, 0
    ea = [v[0] / v[2] for v in full]
    eb = [v[1] / v[2] for v in full]
    return paired_bootstrap_ci(ea, eb, level=LEVEL), len(full)


def differences(runs: list[dict[str, Any]], swept: list[str]) -> list[Diff]:
    """Paired differences (later setting minus earlier) of each task's headline accuracy and
    of the two averages, for every pair of settings (or each vs the first when many)."""
    settings = _settings(runs, swept)
    if len(settings) <= MAX_ALL_PAIRS:
        pairs = list(itertools.combinations(range(len(settings)), 2))
    else:
        pairs = [(0, j) for j in range(1, len(settings))]
    tasks = _task_metric(runs)
    keys = [VL_AVG, TEXT_AVG] + [f"{t}.{m}" for t, m in tasks.items()]
    out = []
    for i, j in pairs:
        (lb, b), (la, a) = settings[i], settings[j]
        seeds = [s for s in a if s in b]
        if not seeds:
            continue
        sa = {s: run_scores(a[s]["eval"]) for s in seeds}
        sb = {s: run_scores(b[s]["eval"]) for s in seeds}
        for key in keys:
            both = [s for s in seeds if key in sa[s] and key in sb[s]]
            if not both:
                continue
            da = [sa[s][key] for s in both]
            db = [sb[s][key] for s in both]
            d = Diff(
                key,
                la,
                lb,
                statistics.fmean(da),
                statistics.fmean(db),
                statistics.fmean(x - y for x, y in zip(da, db, strict=True)),
                both,
                t_interval([x - y for x, y in zip(da, db, strict=True)], LEVEL),
            )
            if key not in (VL_AVG, TEXT_AVG):
                d.example_ci, d.n_examples = _example_ci(key.split(".", 1)[0], a, b, both)
            out.append(d)
    return out


def _ci(ci: Interval | None) -> str:
    if ci is None:
        return ""
    if any(v != v for v in ci):  # nan: one seed
        return "(one seed)"
    return f"[{fmt(round(ci[0], 4))}, {fmt(round(ci[1], 4))}]"


def _signed(x: float) -> str:
    s = fmt(round(x, 4))
    return s if s.startswith("-") else "+" + s


def differences_section(diffs: list[Diff]) -> list[str]:
    """A table and a sentence per compared pair of settings."""
    if not diffs:
        return ["No two settings have a seed in common yet: no paired difference.\n"]
    out = [
        "Setting minus setting, paired: the same seed of each, and the same held-out examples. "
        "Seeds: a 95% t interval over the per-seed differences. Examples: a 95% paired "
        "bootstrap over the eval examples (each example's correctness averaged over the "
        "seeds). A difference is resolved when its interval excludes 0.\n"
    ]
    for (a, b), group in itertools.groupby(diffs, key=lambda d: (d.a, d.b)):
        group = list(group)
        rows = [
            [
                d.key,
                fmt(d.mean_a),
                fmt(d.mean_b),
                _signed(d.diff),
                _ci(d.seed_ci),
                _ci(d.example_ci),
                d.n_examples or "",
                d.verdict(),
            ]
            for d in group
        ]
        out.append(f"### {a} − {b}\n")
        out.append(
            md_table(
                ["metric", a, b, "difference", "seeds CI", "examples CI", "examples", "verdict"],
                rows,
            )
        )
        out.append(comparison_sentence(group) + "\n")
    return out


def comparison_sentence(group: list[Diff]) -> str:
    """Which differences of one pair of settings are resolved, in words."""
    a, b, k = group[0].a, group[0].b, len(group[0].seeds)
    parts = []
    for label, test in (
        ("resolved by both intervals", lambda d: d.by_seeds and d.by_examples),
        ("resolved by the seeds only", lambda d: d.by_seeds and not d.by_examples),
        ("resolved by the examples only", lambda d: d.by_examples and not d.by_seeds),
    ):
        hit = [d for d in group if test(d)]
        if hit:
            parts.append(f"{label}: " + ", ".join(f"{d.key} ({_signed(d.diff)})" for d in hit))
    none = [d.key for d in group if not d.by_seeds and not d.by_examples]
    if none:
        parts.append("not resolved: " + ", ".join(none))
    return f"{a} − {b} ({k} paired seed{'s' if k != 1 else ''}): " + "; ".join(parts) + "."


def standard_errors(runs: list[dict[str, Any]], swept: list[str]) -> tuple[list[str], list[list]]:
    """(header, rows): each task's accuracy example standard error per setting,
    sqrt(p (1 - p) / n) with p the seeds' mean accuracy and n the examples of one run."""
    settings = _settings(runs, swept)
    tasks = _task_metric(runs)
    rows = []
    for task, metric in tasks.items():
        row: list[Any] = [f"{task}.{metric}"]
        for _, done in settings:
            vals = [r["eval"][task] for r in done.values() if task in r["eval"]]
            ns = [v.get("n") for v in vals if isinstance(v.get("n"), int)]
            if not vals or not ns:
                row.append("")
                continue
            p = statistics.fmean(v[metric] for v in vals)
            se = standard_error(p, min(ns))
            flag = "" if se <= SE_TARGET else " (> 0.015)"
            row.append(f"{fmt(round(se, 4))} (n={min(ns)}){flag}")
        rows.append(row)
    return ["metric", *(lb for lb, _ in settings)], rows


def _json_ci(ci: Interval | None) -> list[float] | None:
    return None if ci is None or any(v != v for v in ci) else [float(v) for v in ci]


def diffs_summary(diffs: list[Diff]) -> list[dict[str, Any]]:
    """The differences as JSON records for study_summary.json (a sweep may read them)."""
    return [
        {
            "metric": d.key,
            "a": d.a,
            "b": d.b,
            "diff": d.diff,
            "seeds": d.seeds,
            "seed_ci": _json_ci(d.seed_ci),
            "example_ci": _json_ci(d.example_ci),
            "n_examples": d.n_examples,
            "verdict": d.verdict(),
        }
        for d in diffs
    ]
