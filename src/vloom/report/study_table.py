"""The study's numbers: every run's results grouped by setting, mean +- std over seeds.

A setting is the swept values without the seed; its runs differ only in the seed, so the
spread shown is seed variance and nothing else. Per run, the vision-language and the text-only
averages are the mean of the accuracy-like headline score of the tasks of that kind (losses
and perplexities have other scales, so they are shown but not averaged); then those averages
are themselves averaged over seeds like any metric.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from vloom.report.tables import fmt

# Which tasks need images: each task declares it in the evaluate/ registry (the `modality`
# attribute `register` sets); this table is the fallback for results whose task is not
# registered here (e.g. read on a machine with another vloom version).
TASK_KINDS: dict[str, str] = {
    "vqa": "vision-language",
    "vqa_open": "vision-language",
    "self_correct": "vision-language",
    "vqa_mc_converted": "vision-language",
    "caption_loss": "vision-language",
    "caption_gen": "vision-language",
    "multi_image": "vision-language",
    "vmcbench": "vision-language",
    "text_qa": "text",
    "text_ppl": "text",
    "world_qa": "text",
    "fewshot_qa": "text",
}
# Headline scores that share a 0..1 higher-is-better scale and so can be averaged.
AVERAGE_METRICS = ("accuracy", "exact_match")
# Bookkeeping metrics that are not results.
SKIP_METRICS = ("n", "seconds", "tokens", "num_fewshot")
VL_AVG, TEXT_AVG = "vision-language average", "text-only average"


def task_kind(name: str) -> str:
    """'vision-language', 'text' or 'other' for a task name."""
    try:
        from vloom.evaluate.tasks import TASKS

        declared = getattr(TASKS.get(name), "modality", None)
    except Exception:  # the registry is optional here: a results file is enough
        declared = None
    if declared in ("vision-language", "text"):
        return declared
    return TASK_KINDS.get(name, "other")


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def headline_score(metrics: dict[str, Any]) -> tuple[str, float] | None:
    for m in AVERAGE_METRICS:
        if finite(metrics.get(m)):
            return m, float(metrics[m])
    return None


def run_scores(ev: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Flat {"task.metric": value} of one run, plus the two averages where they exist."""
    out: dict[str, float] = {}
    groups: dict[str, list[float]] = {"vision-language": [], "text": []}
    for task in sorted(ev):
        metrics = ev[task]
        if not isinstance(metrics, dict):
            continue
        for m, v in metrics.items():
            if m not in SKIP_METRICS and finite(v):
                out[f"{task}.{m}"] = float(v)
        kind, score = task_kind(task), headline_score(metrics)
        if score is not None and kind in groups:
            groups[kind].append(score[1])
    if groups["vision-language"]:
        out[VL_AVG] = statistics.fmean(groups["vision-language"])
    if groups["text"]:
        out[TEXT_AVG] = statistics.fmean(groups["text"])
    return out


def averaged_tasks(evals: list[dict[str, dict[str, Any]]]) -> dict[str, list[str]]:
    """Which tasks (and which metric) entered each average, for the report's footnote."""
    out: dict[str, dict[str, None]] = {VL_AVG: {}, TEXT_AVG: {}}
    for ev in evals:
        for task, metrics in ev.items():
            s = headline_score(metrics) if isinstance(metrics, dict) else None
            kind = task_kind(task)
            if s is not None and kind != "other":
                out[VL_AVG if kind == "vision-language" else TEXT_AVG][f"{task}.{s[0]}"] = None
    return {k: list(v) for k, v in out.items()}


def mean_std(values: list[float]) -> tuple[float, float | None, int]:
    """(mean, sample std or None for a single seed, n)."""
    n = len(values)
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if n > 1 else None), n


def fmt_mean_std(ms: tuple[float, float | None, int] | None) -> str:
    if ms is None:
        return ""
    mean, std, n = ms
    return f"{fmt(mean)} ± {fmt(std)} (n={n})" if std is not None else f"{fmt(mean)} (n=1)"


def setting_label(settings: dict[str, Any], swept: list[str]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={fmt(settings.get(k))}" for k in swept) or "all"


def group_runs(runs: list[dict[str, Any]], swept: list[str]) -> dict[tuple, list[dict[str, Any]]]:
    """Runs grouped by their swept values (seed excluded), in first-seen (grid) order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        key = tuple(_hashable(r["settings"].get(k)) for k in swept)
        groups.setdefault(key, []).append(r)
    return groups


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def summarize(
    runs: list[dict[str, Any]], swept: list[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """(metric keys, one row per setting): {"settings", "label", "stats": {key: (m, s, n)}}.

    Only runs with results count; a failed run is absent from n (the runs table names it).
    """
    keys: dict[str, None] = {VL_AVG: None, TEXT_AVG: None}
    grouped = []
    for members in group_runs(runs, swept).values():
        scores = [run_scores(r["eval"]) for r in members if r.get("eval")]
        for s in scores:
            for k in s:
                keys.setdefault(k, None)
        grouped.append((members[0]["settings"], scores))
    rows = []
    for settings, scores in grouped:
        stats = {}
        for k in keys:
            vals = [s[k] for s in scores if k in s]
            if vals:
                stats[k] = mean_std(vals)
        rows.append({"settings": settings, "label": setting_label(settings, swept), "stats": stats})
    used = [k for k in keys if any(k in r["stats"] for r in rows)]
    return used, rows
