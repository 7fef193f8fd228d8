"""Study figures: each averaged score and each task's headline metric against a swept value.

Error bars are the sample standard deviation over seeds (the only replicate axis of a study);
a setting with a single seed is drawn as a point without a bar. When several fields are swept,
the first numeric one is the x-axis and every combination of the others is its own line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from vloom.report.plots import _placeholder, _save, main_metric
from vloom.report.study_table import TEXT_AVG, VL_AVG, finite
from vloom.report.tables import fmt


def panel_keys(keys: list[str]) -> list[str]:
    """The two averages, then one headline metric per task (accuracy, else perplexity/loss)."""
    out = [k for k in (VL_AVG, TEXT_AVG) if k in keys]
    tasks: dict[str, dict[str, Any]] = {}
    for k in keys:
        if "." in k and k not in (VL_AVG, TEXT_AVG):
            task, metric = k.split(".", 1)
            tasks.setdefault(task, {})[metric] = 1.0
    for task, metrics in tasks.items():
        m = main_metric(metrics)
        if m:
            out.append(f"{task}.{m}")
    return out


def _x_field(rows: list[dict[str, Any]], swept: list[str]) -> str | None:
    for k in swept:
        if all(finite(r["settings"].get(k)) for r in rows):
            return k
    return swept[0] if swept else None


def plot_study(keys: list[str], rows: list[dict[str, Any]], swept: list[str], out: Path) -> Path:
    """One panel per score, x = the swept value, y = mean over seeds, bars = std over seeds."""
    panels = panel_keys(keys)
    n = max(len(panels), 1)
    cols = min(n, 3)
    nrows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.6 * cols + 0.4, 3.0 * nrows + 0.4))
    xf = _x_field(rows, swept)
    if not panels or not rows:
        _placeholder(fig.add_subplot(), "no finished runs")
        fig.tight_layout()
        return _save(fig, out)
    numeric = xf is not None and all(finite(r["settings"].get(xf)) for r in rows)
    cats = [] if numeric else list(dict.fromkeys(fmt(r["settings"].get(xf)) for r in rows))
    others = [k for k in swept if k != xf]
    lines: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        label = ", ".join(f"{k.split('.')[-1]}={fmt(r['settings'].get(k))}" for k in others)
        lines.setdefault(label, []).append(r)
    for i, key in enumerate(panels):
        ax = fig.add_subplot(nrows, cols, i + 1)
        for j, (label, members) in enumerate(lines.items()):
            pts = []
            for r in members:
                if key not in r["stats"]:
                    continue
                x = r["settings"].get(xf) if numeric else cats.index(fmt(r["settings"].get(xf)))
                mean, std, _ = r["stats"][key]
                pts.append((x, mean, std or 0.0))
            if not pts:
                continue
            pts.sort()
            ax.errorbar(
                [p[0] for p in pts],
                [p[1] for p in pts],
                yerr=[p[2] for p in pts],
                marker="o",
                capsize=3,
                color=f"C{j % 10}",
                label=label or None,
            )
        if not numeric:
            ax.set_xticks(range(len(cats)))
            ax.set_xticklabels(cats, fontsize=8)
        ax.set_xlabel((xf or "").split(".")[-1], fontsize=8)
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        if len(lines) > 1 and i == 0:
            ax.legend(fontsize=7)
    fig.suptitle("mean ± std over seeds", fontsize=9)
    fig.tight_layout()
    return _save(fig, out)
