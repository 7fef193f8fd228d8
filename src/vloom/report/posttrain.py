"""Post-training in the run report: SCoRe's self-correction table (attempt 1, attempt 2, their
difference and the flips, with bootstrap intervals over the held-out questions), the SFT
stage's loss and the RL stage's reward, KL and response-length curves.

Every part reads what is there and says nothing when it is not: a pre-training run shows no
post-training section, an RL run whose trainer logs no KL shows no KL panel. Curves are found
by key pattern (`reward`, `reward_t2`, `kl`, `response_len`, `acc_t1`, ...), so a trainer that
logs one more variant of a key gets one more line, not a missing plot.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vloom.report.headline import LEVEL, _with_ci, paired_records
from vloom.report.plots import Lines, plot_panels
from vloom.report.runfiles import REWARD_KEY, finite, is_rl_line, read_metrics, series
from vloom.report.stats import Interval, bootstrap_ci, excludes_zero, paired_bootstrap_ci
from vloom.report.tables import fmt, md_table

SFT, RL = "sft", "rl"
# (panel title, y label, metrics.jsonl keys it draws) of the RL stage's curves
RL_CURVES: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("reward", "mean reward", REWARD_KEY),
    ("KL to the reference", "KL", re.compile(r"^kl(_[a-z0-9]+)*$")),
    (
        "response length",
        "tokens",
        re.compile(r"^(response|resp)_(len|length|tokens)(_[a-z0-9]+)*$"),
    ),
    ("accuracy on the rollouts", "accuracy", re.compile(r"^acc(uracy)?_t[12]$")),
)
NOT_A_CURVE = re.compile(r"_(weight|coef|coeff|std|min|max|failed|failures)$")
# the metrics of a self-correction task (vloom.evaluate.tasks.self_correct)
T1, T2 = "accuracy_t1", "accuracy_t2"
FLIPS = ("delta", "wrong_to_right", "right_to_wrong")


def stage_kinds(cfg: dict[str, Any] | None) -> dict[str, str]:
    """{stage name: kind} of a run's config.json (`train.stages[i].kind`, pretrain if unset)."""
    stages = ((cfg or {}).get("train") or {}).get("stages") or []
    return {
        str(s["name"]): str(s.get("kind") or "pretrain")
        for s in stages
        if isinstance(s, dict) and s.get("name")
    }


def stages_of(cfg: dict[str, Any] | None, kind: str) -> set[str]:
    """Names of a config's stages of `kind`."""
    return {name for name, k in stage_kinds(cfg).items() if k == kind}


def _kind(rec: dict[str, Any], kinds: dict[str, str]) -> str | None:
    k = rec.get("kind")
    return k if isinstance(k, str) else kinds.get(str(rec.get("stage")))


def stage_lines(records: list[dict[str, Any]], kinds: dict[str, str], kind: str) -> list[dict]:
    """The metrics.jsonl lines of `kind` stages (a line logging a reward counts as RL even
    when the config names no RL stage: an older or hand-written config)."""
    if kind == RL:
        return [r for r in records if _kind(r, kinds) == RL or is_rl_line(r)]
    return [r for r in records if _kind(r, kinds) == kind]


def _curve_keys(records: list[dict[str, Any]], pattern: re.Pattern[str]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if pattern.match(k) and not NOT_A_CURVE.search(k) and finite(v):
                seen.setdefault(k, None)
    return sorted(seen)


def rl_panels(lines: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str, Lines]]:
    """Reward, KL, response length and rollout accuracy panels; a line per run and key."""
    panels = []
    for title, ylabel, pattern in RL_CURVES:
        drawn: Lines = {}
        for run, recs in lines.items():
            for key in _curve_keys(recs, pattern):
                drawn[key if len(lines) == 1 else f"{run}: {key}"] = series(recs, key)
        panels.append((title, ylabel, drawn))
    return panels


def _span(recs: list[dict[str, Any]], key: str) -> tuple[float | None, float | None]:
    """Mean of the first and of the last quarter of a curve (at least one point each), as
    results.json's RL summary (vloom.rl.summary) takes a stage's start and end."""
    _, ys = series(recs, key)
    if not ys:
        return None, None
    k = max(1, len(ys) // 4)
    return sum(ys[:k]) / k, sum(ys[-k:]) / k


def _curve_table(lines: dict[str, list[dict[str, Any]]], keys: list[str]) -> str:
    rows = []
    for run, recs in lines.items():
        steps = [r["step"] for r in recs]
        for key in keys:
            a, b = _span(recs, key)
            if a is not None:
                rows.append([run, key, fmt(a), fmt(b), f"{min(steps)}..{max(steps)}"])
    header = ["run", "metric", "start (first quarter)", "end (last quarter)", "steps"]
    return md_table(header, rows) if rows else ""


def training_sections(
    run_dir: Path, runs: dict[str, Path], cfgs: dict[str, dict[str, Any] | None], plots: Path
) -> list[str]:
    """`### Supervised fine-tuning` (loss over the SFT stage) and `### Reinforcement learning`
    (reward, KL, response length curves and their start/end), for runs that had such stages.
    Figures go to plots/sft_loss.png and plots/rl.png; a stale one from an earlier report of
    the same directory is removed when the run no longer has the stage."""
    records = {lb: read_metrics(d)[0] for lb, d in runs.items()}
    kinds = {lb: stage_kinds(cfgs.get(lb)) for lb in runs}
    out: list[str] = []
    sft = {lb: stage_lines(records[lb], kinds[lb], SFT) for lb in runs}
    sft = {lb: r for lb, r in sft.items() if r}
    png = plots / "sft_loss.png"
    made = plot_panels(
        [("SFT loss (assistant tokens)", "loss", {lb: series(r, "loss") for lb, r in sft.items()})],
        png,
        "Supervised fine-tuning",
    )
    if made is None:
        png.unlink(missing_ok=True)
    else:
        out += [
            "### Supervised fine-tuning\n",
            f"![SFT loss]({made.relative_to(run_dir).as_posix()})\n",
            "The loss counts only the tokens the model must predict (assistant turns), over "
            "the steps of the SFT stage(s).\n",
            _curve_table(sft, ["loss"]),
        ]
    rl = {lb: stage_lines(records[lb], kinds[lb], RL) for lb in runs}
    rl = {lb: r for lb, r in rl.items() if r}
    png = plots / "rl.png"
    panels = rl_panels(rl)
    made = plot_panels(panels, png, "Reinforcement learning")
    if made is None:
        png.unlink(missing_ok=True)
        if rl:
            out.append("### Reinforcement learning\n")
            out.append("The RL steps' metrics lines log no reward, KL or response length.\n")
        return out
    keys = sorted({k for _, _, lines in panels for k in lines if ": " not in k})
    keys = keys or sorted({k.split(": ", 1)[1] for _, _, lines in panels for k in lines})
    out += [
        "### Reinforcement learning\n",
        f"![reinforcement learning]({made.relative_to(run_dir).as_posix()})\n",
        "Per RL step: the mean reward of the sampled responses, the KL to the frozen "
        "reference, the mean response length in tokens, and the rollouts' accuracy at each "
        "attempt, where the trainer logs them.\n",
        _curve_table(rl, keys),
    ]
    return out + _skips(rl)


def _skips(lines: dict[str, list[dict[str, Any]]]) -> list[str]:
    """A sentence counting the responses each run's reward could not score (it raised or
    returned no number), summed from the lines' `reward_skips` {reason: count}."""
    parts = []
    for run, recs in lines.items():
        total: dict[str, int] = {}
        for r in recs:
            skips = r.get("reward_skips")
            for why, n in (skips if isinstance(skips, dict) else {}).items():
                if finite(n):
                    total[str(why)] = total.get(str(why), 0) + int(n)
        if total:
            parts.append(f"{run}: " + ", ".join(f"{n} {why}" for why, n in sorted(total.items())))
    if not parts:
        return []
    return [
        "Responses the reward could not score (skipped, the run went on): "
        + "; ".join(parts)
        + ".\n"
    ]


def self_correct_tasks(evals: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Results keys of self-correction tasks (any `as=` name): those with both attempts."""
    return sorted({t for ev in evals.values() for t, m in ev.items() if T1 in m and T2 in m})


def _twice(recs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The records holding both attempts' correctness as 0/1."""

    def ok(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v in (0, 1)

    return [r for r in recs or [] if ok(r.get("correct_t1")) and ok(r.get("correct_t2"))]


def _attempts(recs: list[dict[str, Any]] | None) -> tuple[list[float], list[float]]:
    """(correct at attempt 1, at attempt 2) of the records holding both."""
    both = _twice(recs)
    return [float(r["correct_t1"]) for r in both], [float(r["correct_t2"]) for r in both]


def flip_intervals(c1: list[float], c2: list[float]) -> dict[str, tuple[float, Interval]]:
    """(value, 95% interval) of t1, t2, delta (a paired bootstrap) and the flip shares."""
    w2r = [float(a == 0 and b == 1) for a, b in zip(c1, c2, strict=True)]
    r2w = [float(a == 1 and b == 0) for a, b in zip(c1, c2, strict=True)]
    n = len(c1)
    return {
        T1: (sum(c1) / n, bootstrap_ci(c1, level=LEVEL)),
        T2: (sum(c2) / n, bootstrap_ci(c2, level=LEVEL)),
        "delta": ((sum(c2) - sum(c1)) / n, paired_bootstrap_ci(c2, c1, level=LEVEL)),
        "wrong_to_right": (sum(w2r) / n, bootstrap_ci(w2r, level=LEVEL)),
        "right_to_wrong": (sum(r2w) / n, bootstrap_ci(r2w, level=LEVEL)),
    }


def _row_cells(metrics: dict[str, Any], recs: list[dict[str, Any]] | None) -> tuple[list, Any]:
    """Cells t1, t2, delta, w->r, r->w (with intervals when the records allow) and delta's
    interval (None without records)."""
    c1, c2 = _attempts(recs)
    if c1:
        iv = flip_intervals(c1, c2)
        cells = [_with_ci(v, ci, signed=k == "delta") for k, (v, ci) in iv.items()]
        return cells + [len(c1)], iv["delta"][1]
    cells = [_with_ci(metrics.get(k), None, signed=k == "delta") for k in (T1, T2, *FLIPS)]
    return cells + [metrics.get("n")], None


def _resolved(ci: Interval) -> str:
    if not excludes_zero(ci):
        return "delta not resolved (its interval holds 0)"
    return f"delta resolved {'above' if ci[0] > 0 else 'below'} 0"


HEADER = ["attempt 1", "attempt 2", "delta (t2 - t1)", "wrong -> right", "right -> wrong"]


def self_correct_table(
    evals: dict[str, dict[str, dict[str, Any]]],
    examples: dict[str, dict[str, list[dict[str, Any]]]],
) -> tuple[str, list[str]]:
    """(markdown table: a row per run and self-correction task, sentences on which deltas
    the intervals resolve)."""
    rows, said = [], []
    for task in self_correct_tasks(evals):
        for run, ev in evals.items():
            if task not in ev:
                continue
            cells, dci = _row_cells(ev[task], examples.get(run, {}).get(task))
            changed = ev[task].get("changed")
            rows.append([run, task, *cells[:-1], fmt(changed), cells[-1]])
            if dci is not None:
                said.append(f"{run} {task}: {_resolved(dci)}")
    header = ["run", "task", *HEADER, "answer changed", "examples"]
    return (md_table(header, rows) if rows else ""), said


def per_type_table(
    evals: dict[str, dict[str, dict[str, Any]]],
    examples: dict[str, dict[str, list[dict[str, Any]]]],
    task: str,
) -> str:
    """A row per run and question type: t1, t2, delta [paired interval], flips."""
    rows = []
    for run, ev in evals.items():
        m = ev.get(task)
        if not m:
            continue
        recs = examples.get(run, {}).get(task) or []
        qtypes = sorted({k.removeprefix(T1 + "_") for k in m if k.startswith(T1 + "_")})
        for qt in qtypes:
            sub = [r for r in recs if r.get("qtype") == qt]
            metrics = {k: m.get(f"{k}_{qt}") for k in (T1, T2, *FLIPS)}
            cells, _ = _row_cells(metrics, sub)
            rows.append([run, qt, *cells])
    return md_table(["run", "question type", *HEADER, "examples"], rows) if rows else ""


def _deltas(recs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Each question's change from attempt 1 to attempt 2 (-1, 0, +1) as its `correct`, so
    the pairing of headline.paired_records applies."""
    return [{"id": r.get("id"), "correct": r["correct_t2"] - r["correct_t1"]} for r in _twice(recs)]


def delta_differences(
    evals: dict[str, dict[str, dict[str, Any]]],
    examples: dict[str, dict[str, list[dict[str, Any]]]],
) -> str:
    """Each later run's delta minus the first run's, on the questions both answered, with a
    paired bootstrap interval (does training make the second attempt help more?)."""
    runs = list(evals)
    rows = []
    for task in self_correct_tasks(evals):
        base = _deltas(examples.get(runs[0], {}).get(task))
        for run in runs[1:]:
            pairs = paired_records(_deltas(examples.get(run, {}).get(task)), base)
            if not base or not pairs:
                continue
            xa, xb = [x for _, x, _ in pairs], [y for _, _, y in pairs]
            diff = (sum(xa) - sum(xb)) / len(xa)
            ci = paired_bootstrap_ci(xa, xb, level=LEVEL)
            verdict = "yes" if excludes_zero(ci) else "no"
            rows.append(
                [f"{run} - {runs[0]}", task, _with_ci(diff, ci, signed=True), verdict, len(xa)]
            )
    header = ["runs", "task", "delta difference [95%]", "interval excludes 0", "questions"]
    return md_table(header, rows) if rows else ""


def self_correct_section(
    evals: dict[str, dict[str, dict[str, Any]]],
    examples: dict[str, dict[str, list[dict[str, Any]]]],
) -> list[str]:
    """`### Self-correction`: SCoRe's table, which deltas are resolved, and per question type.
    Empty when no run evaluated a self-correction task."""
    table, said = self_correct_table(evals, examples)
    if not table:
        return []
    level = f"{int(LEVEL * 100)}%"
    out = [
        "### Self-correction: two attempts\n",
        table,
        "Attempt 1 answers the question; attempt 2 sees its own first answer, is asked to "
        "check it and answers again (greedy both times). delta = attempt 2 - attempt 1 = "
        "wrong -> right - right -> wrong, each a share of all questions. Brackets: "
        f"{level} bootstrap intervals over the questions (delta's paired).\n",
    ]
    if said:
        out.append("; ".join(said) + ".\n")
    diffs = delta_differences(evals, examples)
    if diffs:
        out += [diffs, "The difference in delta pairs each question's change between the runs.\n"]
    for task in self_correct_tasks(evals):
        t = per_type_table(evals, examples, task)
        if t:
            out += [f"#### {task}: per question type\n", t]
    return out
