"""The study report: study.md + study.html + plots/study.png for a sweep directory.

It reads only what is on disk (study.json and each run's status.json / results.json), so it
can be written at any time, during a sweep or after a SLURM array, and it lists every run,
finished, failed (with the last line of its error) or not yet run: nothing is left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vloom.ondisk import atomic_write_json, atomic_write_text
from vloom.report.html import write_html
from vloom.report.runfiles import RunFileError, eval_section, read_json
from vloom.report.study_diffs import (
    SE_TARGET,
    differences,
    differences_section,
    diffs_summary,
    standard_errors,
)
from vloom.report.study_plots import plot_study
from vloom.report.study_table import (
    TEXT_AVG,
    VL_AVG,
    averaged_tasks,
    fmt_mean_std,
    setting_label,
    summarize,
)
from vloom.report.tables import fmt, fmt_seconds, md_table

STUDY_MD, STUDY_JSON, STUDY_SUMMARY, RUNS_DIR = (
    "study.md",
    "study.json",
    "study_summary.json",
    "runs",
)


def collect_runs(sweep_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(study.json, one record per planned run: name, settings, status, error, eval, train)."""
    sweep_dir = Path(sweep_dir)
    try:
        study = read_json(sweep_dir / STUDY_JSON)
    except RunFileError as e:
        raise ValueError(str(e)) from None
    if study is None:
        raise ValueError(f"{sweep_dir}: no {STUDY_JSON}: not a sweep directory (run `vloom sweep`)")
    runs = []
    for r in study.get("runs", []):
        rd = sweep_dir / RUNS_DIR / r["name"]
        rec: dict[str, Any] = {"name": r["name"], "settings": r.get("settings", {}), "dir": rd}
        try:
            status = read_json(rd / "status.json") or {}
            results = read_json(rd / "results.json")
        except RunFileError as e:
            status, results = {"status": "failed", "error": str(e)}, None
        rec["status"] = status.get("status", "not run")
        rec["error"] = status.get("error")
        rec["seconds"] = status.get("seconds")
        skipped = status.get("metrics_skipped")
        rec["metrics_skipped"] = skipped if isinstance(skipped, dict) else {}
        if rec["status"] == "done" and results is not None:
            rec["eval"] = eval_section(results)
            rec["train"] = results.get("train") or {}
        runs.append(rec)
    return study, runs


def _runs_table(runs: list[dict[str, Any]], swept: list[str]) -> str:
    rows = []
    for r in runs:
        tr = r.get("train") or {}
        rows.append(
            [
                r["name"],
                setting_label(r["settings"], swept),
                fmt(r["settings"].get("seed")),
                r["status"],
                tr.get("tokens"),
                fmt_seconds(r["seconds"]) if r.get("seconds") is not None else "",
                r.get("error") or "",
            ]
        )
    header = ["run", "setting", "seed", "status", "tokens", "seconds", "error (last line)"]
    return md_table(header, rows)


def write_study_report(sweep_dir: str | Path) -> tuple[Path, Path]:
    """Write SWEEP/study.md, SWEEP/study.html and SWEEP/plots/study.png; return (md, html)."""
    sweep_dir = Path(sweep_dir)
    study, runs = collect_runs(sweep_dir)
    swept: list[str] = study.get("swept", [])
    keys, rows = summarize(runs, swept)
    spec = study.get("spec", {})
    n_done = sum(r["status"] == "done" for r in runs)
    n_failed = sum(r["status"] == "failed" for r in runs)
    out = [f"# Study report: {study.get('name', sweep_dir.name)}\n"]
    out.append(
        f"Sweep directory: `{sweep_dir}`. {len(runs)} runs: {n_done} done, {n_failed} failed, "
        f"{len(runs) - n_done - n_failed} not finished. Swept: "
        + (", ".join(f"`{k}`" for k in swept) or "nothing but the seed")
        + f"; seeds: {fmt(sorted({r['settings'].get('seed') for r in runs}, key=str))}.\n"
    )
    budget = []
    if spec.get("tokens"):
        budget.append(f"equal compute: {fmt(spec['tokens'])} pre-training tokens per run")
    if spec.get("finetune"):
        ft = spec["finetune"]
        budget.append(
            f"then the same fine-tuning stage for every run ({fmt(ft.get('steps'))} steps, "
            f"images on, image/text ratio {fmt(ft.get('image_text_ratio'))})"
        )
    if budget:
        out.append("Recipe: " + "; ".join(budget) + ".\n")
    out.append("## Results (mean ± std over seeds)\n")
    if rows and keys:
        table_rows = [[k, *(fmt_mean_std(r["stats"].get(k)) for r in rows)] for k in keys]
        out.append(md_table(["metric", *(r["label"] for r in rows)], table_rows))
        used = averaged_tasks([r["eval"] for r in runs if r.get("eval")])
        out.append(
            f"The {VL_AVG} is the mean of {', '.join(used[VL_AVG]) or 'no task'}; the "
            f"{TEXT_AVG} of {', '.join(used[TEXT_AVG]) or 'no task'} (accuracy-like scores "
            "only; losses and perplexities are shown but not averaged). The spread is the "
            "sample standard deviation over seeds; n counts the seeds that finished.\n"
        )
        png = plot_study(keys, rows, swept, sweep_dir / "plots" / "study.png")
        out.append(f"![study plots]({png.relative_to(sweep_dir).as_posix()})\n")
    else:
        out.append("No run has finished yet.\n")
    diffs = differences(runs, swept)
    if rows and keys and len(rows) > 1:
        out.append("## Paired differences between settings\n")
        out += differences_section(diffs)
    se_header, se_rows = standard_errors(runs, swept)
    if se_rows:
        out.append("## Example standard error of each accuracy\n")
        out.append(md_table(se_header, se_rows))
        out.append(
            "sqrt(p (1 - p) / n): p the setting's mean accuracy over seeds, n the held-out "
            f"examples of one run; flagged where above {SE_TARGET}.\n"
        )
    out.append("## Runs\n")
    out.append(_runs_table(runs, swept))
    failed = [r for r in runs if r["status"] == "failed"]
    if failed:
        out.append(
            "Failed runs keep their full traceback in `runs/NAME/error.txt`; rerunning "
            "`vloom sweep` retries them and skips the runs that are done.\n"
        )
    out += _skipped_metrics(runs)
    md = atomic_write_text(sweep_dir / STUDY_MD, "\n\n".join(p.strip("\n") for p in out) + "\n")
    summary = {
        "swept": swept,
        "settings": [
            {"settings": r["settings"], "stats": {k: list(v) for k, v in r["stats"].items()}}
            for r in rows
        ],
        "differences": diffs_summary(diffs),
        "runs": {r["name"]: r["status"] for r in runs},
        "metrics_skipped": {r["name"]: r["metrics_skipped"] for r in runs if r["metrics_skipped"]},
    }
    atomic_write_json(sweep_dir / STUDY_SUMMARY, summary)
    return md, write_html(md)


def _skipped_metrics(runs: list[dict[str, Any]]) -> list[str]:
    """A section naming every metrics file whose unreadable lines a run skipped, with counts."""
    lines = [
        f"- `{r['name']}`: {n} unreadable line(s) in `{f}` skipped"
        for r in runs
        for f, n in sorted(r["metrics_skipped"].items())
    ]
    if not lines:
        return []
    return [
        "## Skipped metrics lines\n",
        "\n".join(lines)
        + "\n\nA torn last line (a run killed mid-write) or a line that is not a JSON record "
        "with a numeric step; the rest of the file is used.\n",
    ]
