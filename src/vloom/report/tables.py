"""Markdown tables for the report: config summary, ledgers, evaluation, training throughput.

Each function takes plain dicts (as read from disk) and returns markdown text, so the run
report and the comparison share one rendering and each table can be tested on literals.
"""

from __future__ import annotations

import json
import math
from typing import Any

from vloom.ledger import Ledger

# (label, dotted key) of the settings an ablation usually varies; the rest is in the YAML block.
CONFIG_SUMMARY_KEYS: tuple[tuple[str, str], ...] = (
    ("name", "name"),
    ("seed", "seed"),
    ("interleaved docs", "synth.n_interleaved"),
    ("pair docs", "synth.n_pairs"),
    ("text docs", "synth.n_text"),
    ("image size", "synth.image_size"),
    ("vocab size", "pack.vocab_size"),
    ("sequence length", "pack.seq_len"),
    ("LM width x layers x heads", None),  # derived below
    ("vision width x layers, patch", None),
    ("training steps", "train.steps"),
    ("batch size x grad accum", None),
    ("learning rate", "train.lr"),
    ("schedule", "train.schedule"),
    ("image start fraction", "train.image_start_fraction"),
    ("image/text ratio", "train.image_text_ratio"),
    ("eval tasks", "eval.tasks"),
    ("text-only control", "control"),
)


def fmt(v: Any) -> str:
    """A cell: ints exact (so numbers can be found in the text), floats to 4 significant digits."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        if abs(v) >= 1000:
            return f"{v:.1f}"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return str(v)


def fmt_seconds(s: Any) -> str:
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not math.isfinite(s):
        return fmt(s)
    m, sec = divmod(float(s), 60)
    h, m = divmod(int(m), 60)
    human = f"{h}h {m}m" if h else (f"{m}m {sec:.0f}s" if m else f"{sec:.1f}s")
    return f"{s:.1f} ({human})" if h or m else f"{s:.1f}"


def md_table(header: list[str], rows: list[list[Any]], align: str = "right") -> str:
    """A markdown table: the first column left-aligned, the others `align` (numbers: right)."""

    def cell(x: Any) -> str:
        return (x if isinstance(x, str) else fmt(x)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    rest = "---:" if align == "right" else "---"
    lines.append("|" + "|".join("---" if i == 0 else rest for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def get_dotted(d: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _derived(cfg: dict[str, Any], label: str) -> Any:
    g = lambda k: get_dotted(cfg, k)  # noqa: E731
    if label.startswith("LM") and g("model.d_model") is not None:
        return f"{fmt(g('model.d_model'))} x {fmt(g('model.n_layers'))} x {fmt(g('model.n_heads'))}"
    if label.startswith("vision") and g("model.vision.d_model") is not None:
        return (
            f"{fmt(g('model.vision.d_model'))} x {fmt(g('model.vision.n_layers'))}, "
            f"{fmt(g('model.vision.patch_size'))}"
        )
    if label.startswith("batch") and g("train.batch_size") is not None:
        return f"{fmt(g('train.batch_size'))} x {fmt(g('train.grad_accum') or 1)}"
    return None


def config_table(cfg: dict[str, Any]) -> str:
    """The settings an ablation varies, as a two-column table; absent keys are left out."""
    rows: list[list[Any]] = []
    sources = get_dotted(cfg, "data.sources")
    world = not isinstance(sources, list) or any(
        isinstance(s, dict) and s.get("kind") == "synth" for s in sources
    )
    tokenizer = get_dotted(cfg, "model.lm.tokenizer") or get_dotted(cfg, "model.lm.init")
    for label, key in CONFIG_SUMMARY_KEYS:
        if key and key.startswith("synth.") and not world:
            continue  # a data: run without the world: its sizes say nothing
        value = get_dotted(cfg, key) if key else _derived(cfg, label)
        if key == "pack.vocab_size" and tokenizer:
            value = f"{tokenizer}'s tokenizer"  # pack.vocab_size is unused then
        if value is not None:
            rows.append([label, value])
    if isinstance(sources, list):
        names = [f"{s.get('name')} ({s.get('kind')})" for s in sources if isinstance(s, dict)]
        rows.insert(2, ["data sources", ", ".join(names)])
    steps = get_dotted(cfg, "curate.steps")
    if isinstance(steps, list):
        names = [s.get("name", "?") if isinstance(s, dict) else str(s) for s in steps]
        rows.append(["curation steps", " -> ".join(names) or "(none)"])
    stages = get_dotted(cfg, "train.stages")
    if isinstance(stages, list) and stages:
        desc = [
            f"{s.get('name', '?')} {fmt(s.get('fraction'))} [{fmt(s.get('trainable'))}]"
            for s in stages
            if isinstance(s, dict)
        ]
        rows.append(["training stages", "; ".join(desc)])
    return md_table(["setting", "value"], rows)


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else ""


def ledger_table(ledger: Ledger) -> str:
    """Where every input document ended up: kept, dropped per step and reason, rejected."""
    total = ledger.input
    rows: list[list[Any]] = [["input", "", total, _share(total, total)]]
    rows.append(["kept", "", ledger.kept, _share(ledger.kept, total)])
    for step, reasons in ledger.dropped.items():
        for reason, n in sorted(reasons.items()):
            rows.append([f"dropped by {step}", reason, n, _share(n, total)])
    for reason, n in sorted(ledger.rejected.items()):
        rows.append(["rejected", reason, n, _share(n, total)])
    text = md_table(["outcome", "reason", "documents", "share of input"], rows)
    try:
        ledger.check()
    except AssertionError as e:
        text += f"\n**Warning:** {e}.\n"
    funnel = ledger.extra.get("funnel")
    if isinstance(funnel, list) and funnel:
        text += "\n" + funnel_table(funnel)
    return text


def funnel_table(funnel: list[dict[str, Any]]) -> str:
    """Documents, text tokens (estimated: UTF-8 bytes / 4) and images left after each step.

    A row with "by_source" (the mix step) adds a table of what each source contributes.
    Older ledgers counted "text_words"; that column shows when present.
    """
    funnel = [f for f in funnel if isinstance(f, dict)]
    cols = [
        c
        for c in ("documents", "text_tokens", "images", "text_words")
        if c in ("documents", "images") or any(c in f for f in funnel)
    ]
    rows = [[f.get("step", "?"), *(f.get(c) for c in cols)] for f in funnel]
    text = md_table(["after step", *cols], rows)
    for f in funnel:
        by = f.get("by_source")
        if isinstance(by, dict) and by:
            src_cols = ["documents", "text_tokens", "images"]
            src_rows = [
                [k, *(v.get(c) for c in src_cols)] for k, v in by.items() if isinstance(v, dict)
            ]
            text += f"\nAfter {f.get('step', '?')}, by source:\n\n" + md_table(
                ["source", *src_cols], src_rows
            )
    return text


def kv_table(d: dict[str, Any], header: tuple[str, str] = ("statistic", "value")) -> str:
    """A flat two-column table; nested dicts become dotted keys (e.g. sequences.image)."""
    rows: list[list[Any]] = []

    def walk(prefix: str, x: Any) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            rows.append([prefix, x])

    walk("", d)
    return md_table(list(header), rows)


def eval_rows(evals: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Union of task.metric keys over runs, tasks sorted, metrics in first-seen order."""
    seen: dict[str, dict[str, None]] = {}
    for ev in evals.values():
        for task, metrics in ev.items():
            bucket = seen.setdefault(task, {})
            for m in metrics:
                bucket.setdefault(m, None)
    return [f"{t}.{m}" for t in sorted(seen) for m in seen[t]]


def eval_table(evals: dict[str, dict[str, dict[str, Any]]], delta: bool = False) -> str:
    """Rows task.metric, one column per run (blank where a run lacks it).

    With `delta` and exactly two runs, a last column gives first minus second.
    """
    runs = list(evals)
    rows = []
    for key in eval_rows(evals):
        task, metric = key.split(".", 1)
        values = [evals[r].get(task, {}).get(metric) for r in runs]
        row: list[Any] = [key, *values]
        if delta and len(runs) == 2:
            a, b = values
            ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
            row.append(_signed(a - b) if ok and metric != "n" else "")
        rows.append(row)
    header = ["task.metric", *runs]
    if delta and len(runs) == 2:
        header.append(f"{runs[0]} - {runs[1]}")
    return md_table(header, rows)


def _signed(x: float) -> str:
    s = fmt(x)
    return s if s.startswith("-") or not math.isfinite(x) else "+" + s


def per_type_tables(
    evals: dict[str, dict[str, dict[str, Any]]],
    intervals: dict[str, dict[str, dict[str, tuple[float, float]]]] | None = None,
) -> dict[str, str]:
    """For each task reporting `accuracy_<type>` metrics, a table: rows type, columns runs.
    `intervals[run][task][type]` (type "all" for the task), where given, follows the value."""
    runs = list(evals)
    intervals = intervals or {}
    by_task: dict[str, list[str]] = {}
    for key in eval_rows(evals):
        task, metric = key.split(".", 1)
        # a self-correction task's accuracy_t1/_t2 are attempts, not question types: the
        # report's self-correction section has its per-type table
        two = any({"accuracy_t1", "accuracy_t2"} <= set(ev.get(task, {})) for ev in evals.values())
        if metric.startswith("accuracy_") and not two:
            by_task.setdefault(task, []).append(metric)

    def cell(run: str, task: str, metric: str, qtype: str) -> str:
        v = evals[run].get(task, {}).get(metric)
        ci = intervals.get(run, {}).get(task, {}).get(qtype)
        if v is None or ci is None:
            return fmt(v)
        return f"{fmt(v)} [{fmt(round(ci[0], 4))}, {fmt(round(ci[1], 4))}]"

    out: dict[str, str] = {}
    for task, metrics in by_task.items():
        rows: list[list[Any]] = [
            [
                m.removeprefix("accuracy_"),
                *(cell(r, task, m, m.removeprefix("accuracy_")) for r in runs),
            ]
            for m in metrics
        ]
        overall = [evals[r].get(task, {}).get("accuracy") for r in runs]
        if any(v is not None for v in overall):
            rows.append(["all", *(cell(r, task, "accuracy", "all") for r in runs)])
        out[task] = md_table(["question type", *runs], rows)
    return out


TRAIN_ROWS = (
    ("steps trained", "steps"),
    ("tokens trained", "tokens"),
    ("tokens/s", "tokens_per_s"),
    ("wall time (s)", "wall_s"),
)


def train_table(summaries: dict[str, dict[str, Any]]) -> str:
    """Steps, tokens, throughput and wall time, one column per run."""
    runs = list(summaries)
    rows = []
    for label, key in TRAIN_ROWS:
        vals = [summaries[r].get(key) for r in runs]
        if key == "wall_s":
            vals = [fmt_seconds(v) if v is not None else "" for v in vals]
        rows.append([label, *vals])
    return md_table(["training", *runs], rows)
