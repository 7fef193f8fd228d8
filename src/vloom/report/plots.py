"""The run's figures: loss curves, evaluation bars and benchmark curves during training, as
small deterministic PNGs.

Figures are built with matplotlib's object API on the Agg canvas, never through pyplot, so
plotting touches no global backend or figure state of the caller.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator

from vloom.ondisk import atomic_write_bytes
from vloom.report.runfiles import (
    eval_curves,
    eval_section,
    finite,
    image_entry_step,
    is_rl_line,
    read_metrics,
    series,
)

CHANCE = 0.25  # the VQA and text QA tasks are 4-way multiple choice
DPI = 100
# Preferred headline metric of a task, first match wins; otherwise its first numeric metric.
MAIN_METRICS = ("accuracy", "perplexity", "loss")
# A PNG without the matplotlib version string is byte-identical across installs.
_PNG_META = {"Software": None}


def main_metric(metrics: dict[str, Any]) -> str | None:
    """The headline metric of one task's results (never the example count `n`)."""
    for name in MAIN_METRICS:
        if finite(metrics.get(name)):
            return name
    for name, value in metrics.items():
        if name != "n" and finite(value):
            return name
    return None


def _save(fig: Figure, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata=_PNG_META)
    atomic_write_bytes(out, buf.getvalue())  # a reader never sees a half-written image
    return out


def _placeholder(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_loss(
    run_dirs: dict[str, Path], out: Path, leave_out: dict[str, set[str]] | None = None
) -> Path:
    """Training loss against step for each labelled run, with val_loss points and image entry.

    RL steps stay off it (their loss is a policy objective; the report plots their reward):
    lines that log a reward and lines of the stages named in `leave_out[label]`.

    A dashed vertical line marks the first step whose batch holds images after text-only
    steps (image_frac going above 0). Runs without metrics.jsonl are left out; with none at
    all the PNG says so, so a stale figure never survives a rerun.
    """
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    plotted = False
    colours = [f"C{i}" for i in range(10)]
    for i, (label, run_dir) in enumerate(run_dirs.items()):
        records, _ = read_metrics(Path(run_dir))
        skip = (leave_out or {}).get(label, set())
        records = [r for r in records if r.get("stage") not in skip and not is_rl_line(r)]
        colour = colours[i % len(colours)]
        steps, loss = series(records, "loss")
        if steps:
            ax.plot(steps, loss, color=colour, linewidth=1.2, label=f"{label} train")
            plotted = True
        vsteps, vloss = series(records, "val_loss")
        if vsteps:
            ax.plot(vsteps, vloss, "o", color=colour, markersize=4, label=f"{label} val")
            plotted = True
        entry = image_entry_step(records)
        if entry is not None:
            ax.axvline(
                entry,
                color=colour,
                linestyle="--",
                linewidth=1,
                label=f"{label}: images enter (step {entry})",
            )
    if plotted:
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title("Training loss")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    else:
        _placeholder(ax, "no training metrics")
    fig.tight_layout()
    return _save(fig, out)


def plot_eval(
    results: dict[str, dict],
    out: Path,
    intervals: dict[str, dict[str, tuple[float, float]]] | None = None,
    chance: dict[str, float] | None = None,
) -> Path:
    """One panel per task with a bar per run for that task's main metric; `intervals[run][task]`
    (the 95% intervals of the headline table), where given, are drawn as error bars;
    `chance[task]` replaces the 4-way chance line (e.g. 0.5 for a 2-way task).

    `results` maps a run label to its results.json content (or to its bare `eval` mapping).
    Tasks have unrelated scales (accuracy vs perplexity), hence a panel each rather than one
    shared axis. Accuracy panels show the 4-way chance level as a dotted line.
    """
    evals = {label: eval_section(r) for label, r in results.items()}
    labels = list(evals)
    tasks = sorted({t for ev in evals.values() for t in ev})
    panels = []
    for task in tasks:
        # The first run that reports the task decides its headline metric, so bars compare alike.
        metric = next((main_metric(ev[task]) for ev in evals.values() if task in ev), None)
        if metric is not None:
            panels.append((task, metric))
    n = max(len(panels), 1)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(2.6 * cols + 0.6, 2.8 * rows + 0.4))
    if not panels:
        _placeholder(fig.add_subplot(), "no evaluation results")
        fig.tight_layout()
        return _save(fig, out)
    for k, (task, metric) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        values = [evals[lb].get(task, {}).get(metric) for lb in labels]
        xs = list(range(len(labels)))
        heights = [v if finite(v) else 0.0 for v in values]
        bars = ax.bar(xs, heights, color=[f"C{i % 10}" for i in xs], width=0.7)
        cis = [(intervals or {}).get(lb, {}).get(task) for lb in labels]
        for x, h, ci in zip(xs, heights, cis, strict=True):
            if ci is not None:
                ax.errorbar(x, h, yerr=[[h - ci[0]], [ci[1] - h]], color="0.15", capsize=3, lw=1)
        for bar, v in zip(bars, values, strict=True):
            text = f"{v:.3g}" if finite(v) else "n/a"
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        if metric.startswith("accuracy"):
            level = (chance or {}).get(task, CHANCE)
            ax.axhline(level, color="0.3", linestyle=":", linewidth=1, label="chance")
            ax.set_ylim(0, 1.05)
            ax.legend(fontsize=7, loc="upper right")
        else:
            lo, hi = min([0.0, *heights]), max([*heights, 0.0])
            ax.set_ylim(lo * 1.15, (hi or 1.0) * 1.15)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=8, rotation=20 if len(labels) > 2 else 0)
        ax.set_title(f"{task}\n{metric}", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return _save(fig, out)


def plot_eval_curves(run_dirs: dict[str, Path], out: Path) -> Path | None:
    """Benchmarks during training: one panel per task, its main metric against tokens seen,
    a line per labelled run (eval.during_training records in metrics.jsonl). None, and no
    file, when no run has such records."""
    curves = {label: eval_curves(read_metrics(Path(d))[0]) for label, d in run_dirs.items()}
    tasks = sorted({t for c in curves.values() for t in c})
    panels = []
    for task in tasks:
        # the first run with the task decides its metric, so the lines compare alike
        first = next(c[task] for c in curves.values() if task in c)
        metric = main_metric({m: ys[-1] for m, (_, ys) in first.items() if m != "tokens"})
        if metric is not None:
            panels.append((task, metric))
    if not panels:
        return None
    cols = min(len(panels), 4)
    rows = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(2.8 * cols + 0.6, 2.6 * rows + 0.5))
    for k, (task, metric) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        for i, (label, c) in enumerate(curves.items()):
            if metric in c.get(task, {}):
                xs, ys = c[task][metric]
                ax.plot(xs, ys, "o-", color=f"C{i % 10}", markersize=3, linewidth=1.2, label=label)
        if metric.startswith("accuracy"):
            ax.axhline(CHANCE, color="0.3", linestyle=":", linewidth=1)
        ax.set_title(f"{task}\n{metric}", fontsize=9)
        ax.set_xlabel("tokens seen", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 50k, 1.2M: token counts stay short
        ax.grid(True, alpha=0.3)
        if k == 0 and len(curves) > 1:
            ax.legend(fontsize=7)
    fig.suptitle("Benchmarks during training", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


Lines = dict[str, tuple[list[float], list[float]]]  # line label -> (xs, ys)


def plot_panels(
    panels: list[tuple[str, str, Lines]], out: Path, title: str, xlabel: str = "step"
) -> Path | None:
    """One panel per (title, y label, lines), side by side, a line per label; None, and no
    file, without a panel that has a point (post-training curves of a run that had none)."""
    panels = [p for p in panels if any(xs for xs, _ in p[2].values())]
    if not panels:
        return None
    cols = min(len(panels), 4)
    rows = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(3.0 * cols + 0.6, 2.7 * rows + 0.5))
    for k, (name, ylabel, lines) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        for i, (label, (xs, ys)) in enumerate(lines.items()):
            style = "o-" if len(xs) < 30 else "-"
            ax.plot(xs, ys, style, color=f"C{i % 10}", markersize=3, linewidth=1.2, label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        ax.grid(True, alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)
