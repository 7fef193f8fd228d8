"""RL figures in metrics.jsonl and results.json: a metrics line averages the rl steps since the
previous line; the summary gives each rl stage's figures at its start and at its end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

FIGURES = ("reward", "kl", "kl_t1", "kl_t2", "response_len", "response_len_t2", "acc_t1", "acc_t2")


def merge_step_records(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """One metrics line's rl part: each figure's mean over the steps that had it, the
    rollout tokens and reward skips summed, the recipe."""
    out: dict[str, Any] = {"rl_recipe": recs[-1].get("rl_recipe"), "rl_steps": len(recs)}
    for k in FIGURES:
        vals = [r[k] for r in recs if r.get(k) is not None]
        if vals:
            out[k] = round(sum(vals) / len(vals), 5)
    out["rollout_tokens"] = sum(r.get("rollout_tokens", 0) for r in recs)
    skips: Counter = Counter()
    for r in recs:
        skips.update(r.get("reward_skips") or {})
    out["reward_skips"] = dict(sorted(skips.items()))
    return out


def summarise_rl(metrics_path: Path) -> dict[str, Any]:
    """Per rl stage (by name): its recipe, steps, the figures averaged over the first and the
    last quarter of its metrics lines, and every reward skip counted."""
    if not metrics_path.exists():
        return {}
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for line in metrics_path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "rl_recipe" in rec:
            by_stage.setdefault(rec["stage"], []).append(rec)
    out: dict[str, Any] = {}
    for stage, lines in by_stage.items():
        q = max(len(lines) // 4, 1)
        head, tail = merge_step_records(lines[:q]), merge_step_records(lines[-q:])
        total = merge_step_records(lines)
        out[stage] = {
            "recipe": total["rl_recipe"],
            "steps": sum(r.get("rl_steps", 1) for r in lines),
            "start": {k: head[k] for k in FIGURES if k in head},
            "end": {k: tail[k] for k in FIGURES if k in tail},
            "reward_skips": total["reward_skips"],
        }
    return out
