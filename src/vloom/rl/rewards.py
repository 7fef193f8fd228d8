"""Verifiable rewards: named functions `fn(row, response) -> float` over an RL prompt's row.

A row is a question in vqa_open's layout (`question`, `answers`, `qtype`, `template`, `scene`),
so the world's rewards are exact: a response earns 1.0 when vqa_open would accept it (the
answer sentence, or a bare answer, true of the scene), else 0.0. Users' own rewards are
named `module:function` and imported on first use. A reward that raises or returns a
non-number (or NaN) is a named, counted skip (`score`), never a crash of the run.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Callable
from typing import Any

from vloom.evaluate.metrics import exact_match
from vloom.evaluate.tasks.vqa_open import accepted
from vloom.lazy import registered_or_plugin
from vloom.synth.instructions import point_in_cell

RewardFn = Callable[[dict[str, Any], str], float]
REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    def deco(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        return fn

    return deco


@register_reward("exact")
def exact(row: dict[str, Any], response: str) -> float:
    """1.0 when vqa_open accepts the response for this row (every qtype, count_sum too); a
    pointing row's when the point lies in the object's cell."""
    if row.get("qtype") == "pointing":
        return 1.0 if point_in_cell(response, row["cell"]) else 0.0
    return 1.0 if exact_match(response, accepted(row)) else 0.0


@register_reward("exact_or_format")
def exact_or_format(row: dict[str, Any], response: str) -> float:
    """`exact`, plus 0.1 for a wrong answer in the row's sentence form (a shaped variant)."""
    if exact(row, response):
        return 1.0
    head = (row.get("template") or "").split("{}")[0].strip().lower()
    return 0.1 if head and response.strip().lower().startswith(head) else 0.0


def load_reward(spec: str) -> RewardFn:
    """A registered name or a `module:function` plug-in; a one-line error naming `rl.reward`."""
    fn = registered_or_plugin(spec, REWARDS, "rl.reward")
    if not callable(fn):
        raise ValueError(f"rl.reward {spec!r} is not callable")
    return fn


def reward_name(spec: str) -> str:
    return spec.rsplit(":", 1)[-1]


def score(
    fn: RewardFn, name: str, rows: list[dict[str, Any]], responses: list[str]
) -> tuple[list[float | None], Counter]:
    """Each response's reward, None where the reward failed; the failures counted by
    `<name>:<why>` (why: the exception's type, or `not_a_number`)."""
    out: list[float | None] = []
    skips: Counter = Counter()
    for row, resp in zip(rows, responses, strict=True):
        try:
            r = fn(row, resp)
        except Exception as e:  # a user's plug-in: any failure is a counted skip
            skips[f"{name}:{type(e).__name__}"] += 1
            out.append(None)
            continue
        if not isinstance(r, numbers.Real) or not math.isfinite(float(r)):
            skips[f"{name}:not_a_number"] += 1
            out.append(None)
            continue
        out.append(float(r))
    return out, skips
