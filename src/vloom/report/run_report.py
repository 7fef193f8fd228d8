"""The run report: one markdown page that says what a run did, from whatever files it left.

Each section reads one format from disk; a missing or unreadable file becomes a sentence
saying which stage has not run (or what is wrong with the file), never an exception, so the
report of a half-finished run is still useful.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vloom.evaluate.records import EXAMPLES_DIR, read_examples
from vloom.ondisk import atomic_write_text
from vloom.report.gallery import gallery_section
from vloom.report.headline import (
    chance_levels,
    headline_table,
    headlines,
    resolved_sentence,
    type_intervals,
)
from vloom.report.html import write_html
from vloom.report.plots import plot_eval, plot_eval_curves, plot_loss
from vloom.report.posttrain import RL, self_correct_section, stages_of, training_sections
from vloom.report.runfiles import (
    CONFIG_FILE,
    CONTROL_DIR,
    METRICS_FILE,
    RESULTS_FILE,
    RunFileError,
    eval_section,
    image_entry_step,
    is_rl_line,
    read_json,
    read_ledger,
    read_metrics,
    read_results,
    train_summary,
)
from vloom.report.sources import sources_section
from vloom.report.tables import (
    config_table,
    eval_table,
    kv_table,
    ledger_table,
    per_type_tables,
    train_table,
)

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
# (stage directory, heading, what a missing ledger means)
LEDGER_STAGES = (
    ("curated", "Curation", "curation has not run"),
    ("packed", "Packing", "packing has not run"),
)


def _try(fn: Any, *args: Any) -> tuple[Any, str | None]:
    """(value, None), or (None, one-line reason) for a file that exists but cannot be used."""
    try:
        return fn(*args), None
    except RunFileError as e:
        return None, str(e)


def _config_section(run_dir: Path, cfg: dict[str, Any] | None, err: str | None) -> list[str]:
    """Last and folded: the settings table and the full YAML inside one <details>."""
    out = ["## Configuration\n"]
    if err:
        out.append(f"{err}\n")
    if cfg is None:
        if not err:
            out.append(f"no {CONFIG_FILE}: the run has not been configured.\n")
        return out
    dumped = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None).rstrip()
    out.append(
        "<details><summary>Settings and the full config (YAML)</summary>\n\n"
        f"{config_table(cfg)}\n```yaml\n{dumped}\n```\n\n</details>\n"
    )
    return out


def _data_section(run_dir: Path) -> list[str]:
    out = ["## Data\n", *sources_section(run_dir)]
    for sub, heading, missing in LEDGER_STAGES:
        out.append(f"### {heading} ledger\n")
        ledger, err = _try(read_ledger, run_dir / sub)
        if err:
            out.append(f"{err}\n")
        elif ledger is None:
            out.append(f"no {sub}/ledger.json: {missing}.\n")
        else:
            out.append(ledger_table(ledger))
    stats, err = _try(read_json, run_dir / "packed" / "stats.json")
    if err or stats:
        out.append("### Packed sequences\n")
        out.append(f"{err}\n" if err else kv_table(stats))
    return out


def _metrics_notes(label: str, run_dir: Path) -> list[str]:
    records, skipped = read_metrics(run_dir)
    notes = []
    if not records:
        notes.append(f"- {label}: no usable {METRICS_FILE}: training has not run.")
    if skipped:
        notes.append(
            f"- {label}: {skipped} unreadable line(s) in {METRICS_FILE} skipped "
            "(a run interrupted mid-write leaves a truncated last line)."
        )
    entry = image_entry_step(records)
    if entry is not None:
        notes.append(f"- {label}: image data enters at step {entry} (image_frac > 0).")
    return notes


def _curves_section(run_dir: Path, runs: dict[str, Path]) -> list[str]:
    """Benchmark curves against tokens seen (eval.during_training), when a run has them."""
    png = run_dir / PLOTS_DIR / "eval_curves.png"
    made = plot_eval_curves(runs, png)
    if made is None:
        png.unlink(missing_ok=True)  # no stale figure from an earlier report
        return []
    return [
        "### Benchmarks during training\n",
        f"![benchmarks during training]({made.relative_to(run_dir).as_posix()})\n",
        "Each point evaluates the model being trained on a fixed subset of each task "
        "(`eval.during_training.max_examples`), so values differ from the full final "
        "evaluation above; the x axis is tokens seen.\n",
    ]


def _examples(run_dir: Path, results: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """The per-example records of each evaluated task that has them."""
    recs = {t: read_examples(run_dir, t) for t in eval_section(results)}
    return {t: r for t, r in recs.items() if r}


def _results_section(
    run_dir: Path,
    runs: dict[str, Path],
    all_results: dict[str, dict[str, Any] | None],
    errors: dict[str, str | None],
    examples: dict[str, dict[str, list[dict[str, Any]]]],
) -> list[str]:
    """The answer first: headline metrics with intervals, the difference to the control and
    whether it is resolved, the evaluation figure, per-type accuracy, every metric."""
    out = ["## Results\n"]
    missing = [
        f"- {lb}: {errors[lb]}"
        if errors[lb]
        else f"- {lb}: no {RESULTS_FILE} in `{d}`: evaluation has not run."
        for lb, d in runs.items()
        if all_results[lb] is None
    ]
    if missing:
        out.append("\n".join(missing))
    evals = {lb: eval_section(r) for lb, r in all_results.items() if r is not None}
    evals = {lb: ev for lb, ev in evals.items() if ev}
    heads = headlines(evals, examples)
    bars = {lb: {h.task: h.ci[lb] for h in heads if h.ci.get(lb)} for lb in evals}
    eval_png = plot_eval(evals, run_dir / PLOTS_DIR / "eval.png", bars, chance_levels(examples))
    if evals:
        out.append(headline_table(heads, list(evals)))
        out.append(
            "Brackets: 95% intervals, a bootstrap over the held-out examples (2,000 resamples); "
            "the difference's is a paired bootstrap over the examples both runs answered. "
            "Values without brackets have no per-example records.\n"
        )
        sentence = resolved_sentence(heads, list(evals))
        if sentence:
            out.append(sentence + "\n")
        out.append(f"![evaluation]({eval_png.relative_to(run_dir).as_posix()})\n")
        out += self_correct_section(evals, examples)
        for task, table in per_type_tables(evals, type_intervals(examples)).items():
            out.append(f"### {task}: accuracy per question type\n")
            out.append(table)
        out.append("### All metrics\n")
        out.append(eval_table(evals, delta=len(evals) == 2))
    elif not any(r is None for r in all_results.values()):
        out.append("results.json holds no evaluation tasks.\n")
    out += _curves_section(run_dir, runs)
    return out


def _training_section(
    run_dir: Path,
    runs: dict[str, Path],
    all_results: dict[str, dict[str, Any] | None],
    cfgs: dict[str, dict[str, Any] | None],
) -> list[str]:
    """Loss curves, what the metrics files say, post-training curves (SFT loss; RL reward,
    KL, response length), throughput."""
    out = ["## Training\n"]
    rl_stages = {lb: stages_of(cfgs.get(lb), RL) for lb in runs}
    loss_png = plot_loss(runs, run_dir / PLOTS_DIR / "loss.png", rl_stages)
    lm_lines = [
        r
        for lb, d in runs.items()
        for r in read_metrics(d)[0]
        if r.get("stage") not in rl_stages[lb] and not is_rl_line(r)
    ]
    if lm_lines:  # an RL-only run (from a checkpoint) has no language-modelling loss to show
        out.append(f"![training loss]({loss_png.relative_to(run_dir).as_posix()})\n")
    notes = [n for lb, d in runs.items() for n in _metrics_notes(lb, d)]
    if notes:
        out.append("\n".join(notes) + "\n")
    out += training_sections(run_dir, runs, cfgs, run_dir / PLOTS_DIR)
    summaries = {lb: train_summary(all_results[lb], read_metrics(d)[0]) for lb, d in runs.items()}
    if any(summaries.values()):
        out.append("### Throughput\n")
        out.append(train_table(summaries))
    return out


def write_report(run_dir: str | Path) -> Path:
    """Write RUN/report.md, RUN/plots/loss.png and RUN/plots/eval.png; return the report path.

    The answer comes first: results with intervals, the figures, a gallery of held-out scenes
    (thumbnails in RUN/plots/gallery/), then the data funnel, and the configuration last, folded.
    RUN/report.html beside it is the same report as one self-contained page (plots embedded).
    A `control/` sub-run, when present, is shown side by side with the run.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: not a run directory")
    results, results_err = _try(read_results, run_dir)
    cfg, cfg_err = _try(read_json, run_dir / CONFIG_FILE)
    if cfg is None and not cfg_err and isinstance((results or {}).get("config"), dict):
        cfg = results["config"]  # an older run may carry its config only inside results.json
    name = str((cfg or {}).get("name") or run_dir.name)
    label = name if name != "control" else "run"

    runs: dict[str, Path] = {label: run_dir}
    control_dir = run_dir / CONTROL_DIR
    if control_dir.is_dir():
        runs["control"] = control_dir
    all_results: dict[str, dict[str, Any] | None] = {label: results}
    errors: dict[str, str | None] = {label: results_err}
    if "control" in runs:
        all_results["control"], errors["control"] = _try(read_results, control_dir)

    out = [f"# Run report: {name}\n", f"Run directory: `{run_dir}`\n"]
    examples = {lb: _examples(d, all_results[lb]) for lb, d in runs.items()}
    out += _results_section(run_dir, runs, all_results, errors, examples)
    cfgs = {label: cfg}
    if "control" in runs:
        cfgs["control"] = _try(read_json, control_dir / CONFIG_FILE)[0]
    out += _training_section(run_dir, runs, all_results, cfgs)
    out.append("## Gallery: held-out scenes\n")
    gallery = gallery_section(
        run_dir, examples[label], examples.get("control"), run_dir / PLOTS_DIR / "gallery"
    )
    out += gallery or [
        f"No per-example records of an image task in `{EXAMPLES_DIR}/` (an evaluation "
        "written before they existed, or no multiple-choice image task).\n"
    ]
    out += _data_section(run_dir)
    out += _config_section(run_dir, cfg, cfg_err)

    path = run_dir / REPORT_FILE
    atomic_write_text(path, "\n\n".join(part.strip("\n") for part in out) + "\n")
    write_html(path)
    return path
