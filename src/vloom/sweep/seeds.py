"""`seeds: auto`: how many seeds a study runs, chosen from the results of the runs done so far.

Every setting first gets `seed_plan.start` seeds (0, 1, ...). Then, after each complete
round (every setting finished the same seeds 0..k-1), each compared pair of settings is
judged on each `seed_plan.metrics` by the study report's own paired difference
(vloom.report.study_diffs: setting minus setting, the same seed of each; a 95% t interval over
the per-seed differences):
- separated: the interval excludes 0;
- narrow: the interval is at most `target_width` wide (the difference is known to be smaller
  than the width the study asked for, sign unresolved);
- not shrinking: the last seed narrowed the interval by less than `min_shrink` of its width;
- open: none of these; another seed may separate it.
One more seed is added while any comparison is open and fewer than `budget` seeds ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

SEPARATED, NARROW, STALLED, OPEN = "separated", "narrow", "not shrinking", "open"


def _vl_avg() -> str:
    # the report package imports matplotlib: loaded only when a plan is made, so reading a
    # study file stays light
    from vloom.report.study_table import VL_AVG

    return VL_AVG


class SeedPlanSpec(BaseModel):
    """How `seeds: auto` picks the number of seeds (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    metrics: list[str] = Field(
        default_factory=lambda: [_vl_avg()],
        min_length=1,
        description="what must separate: 'task.metric' keys (vqa.accuracy) or an average "
        "('vision-language average', 'text-only average')",
    )
    start: int = Field(3, ge=2, description="seeds every setting gets before any judgement")
    budget: int = Field(8, ge=2, description="at most this many seeds per setting")
    target_width: float = Field(
        0.02, gt=0, description="a difference's seed interval this narrow needs no more seeds"
    )
    min_shrink: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="a seed that narrows an interval by less than this share "
        "of its width was the last one that comparison asks for",
    )

    @model_validator(mode="after")
    def _start_within_budget(self) -> SeedPlanSpec:
        if self.start > self.budget:
            raise ValueError(f"start ({self.start}) exceeds budget ({self.budget})")
        return self


@dataclass
class Comparison:
    """One metric of one pair of settings after `n` seeds."""

    metric: str
    a: str
    b: str
    n: int
    diff: float
    ci: tuple[float, float]
    prev_width: float | None  # the interval's width at n - 1 seeds (None below 2)
    status: str

    @property
    def width(self) -> float:
        return self.ci[1] - self.ci[0]


@dataclass
class SeedDecision:
    complete: int  # seeds 0..complete-1 are finished for every setting
    seeds: list[int]  # the seeds every setting should have
    more: bool  # whether seeds beyond the finished ones are asked for
    reason: str
    comparisons: list[Comparison] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The decision and its evidence, for the terminal."""
        out = [
            f"seeds: {self.complete} complete round(s); take seeds {_span(self.seeds)}: "
            f"{self.reason}"
        ]
        for c in self.comparisons:
            prev = f", was {c.prev_width:.4f}" if c.prev_width is not None else ""
            out.append(
                f"  {c.metric}: {c.a} - {c.b} = {c.diff:+.4f}, 95% CI [{c.ci[0]:.4f}, "
                f"{c.ci[1]:.4f}] width {c.width:.4f}{prev} ({c.n} seeds): {c.status}"
            )
        return out


def _span(seeds: list[int]) -> str:
    return f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def complete_rounds(runs: list[dict[str, Any]], swept: list[str]) -> int:
    """k such that every setting finished seeds 0..k-1 (runs as collect_runs reads them)."""
    from vloom.report.study_table import group_runs

    groups = group_runs(runs, swept)
    if not groups:
        return 0
    k = 0
    while all(
        any(r["settings"].get("seed") == k and r.get("eval") for r in members)
        for members in groups.values()
    ):
        k += 1
    return k


def _judge(runs: list[dict[str, Any]], swept: list[str], n: int, metrics: list[str]):
    """The report's paired differences of `metrics` over seeds 0..n-1."""
    from vloom.report.study_diffs import differences

    kept = [
        r for r in runs if isinstance(r["settings"].get("seed"), int) and r["settings"]["seed"] < n
    ]
    return {(d.key, d.a, d.b): d for d in differences(kept, swept) if d.key in metrics}


def decide(spec: SeedPlanSpec, runs: list[dict[str, Any]], swept: list[str]) -> SeedDecision:
    """Which seeds every setting should have, from the finished runs (see the module doc)."""
    from vloom.report.study_table import group_runs

    k = complete_rounds(runs, swept)
    if k < spec.start:
        return SeedDecision(
            k, list(range(spec.start)), True, f"the first {spec.start} (seed_plan.start)"
        )
    if len(group_runs(runs, swept)) < 2:
        return SeedDecision(k, list(range(k)), False, "one setting: nothing to compare")
    now, before = _judge(runs, swept, k, spec.metrics), _judge(runs, swept, k - 1, spec.metrics)
    missing = [m for m in spec.metrics if not any(key[0] == m for key in now)]
    if missing:
        raise ValueError(
            f"seed_plan.metrics: no finished run reports {', '.join(map(repr, missing))}; "
            f"metrics are 'task.metric' keys of results.json or {_vl_avg()!r}"
        )
    comps = []
    for key, d in now.items():
        prev = before.get(key)
        pw = prev.seed_ci[1] - prev.seed_ci[0] if prev is not None and k - 1 >= 2 else None
        c = Comparison(d.key, d.a, d.b, k, d.diff, d.seed_ci, pw, OPEN)
        if d.by_seeds:
            c.status = SEPARATED
        elif c.width <= spec.target_width:
            c.status = NARROW
        elif pw is not None and c.width > (1 - spec.min_shrink) * pw:
            c.status = STALLED
        comps.append(c)
    open_ = [c for c in comps if c.status == OPEN]
    if not open_:
        reason = "every comparison is " + "/".join(sorted({c.status for c in comps}))
        return SeedDecision(k, list(range(k)), False, reason, comps)
    if k >= spec.budget:
        reason = f"budget of {spec.budget} seeds reached with {len(open_)} comparison(s) open"
        return SeedDecision(k, list(range(k)), False, reason, comps)
    reason = f"{len(open_)} comparison(s) open; one more seed (budget {spec.budget})"
    return SeedDecision(k, list(range(k + 1)), True, reason, comps)


def decide_for(sweep_dir: Path, spec: SeedPlanSpec) -> SeedDecision:
    """`decide` from what a sweep directory holds (no study.json yet: nothing done)."""
    from vloom.report.study import collect_runs

    try:
        study, runs = collect_runs(sweep_dir)
    except ValueError:
        return decide(spec, [], [])
    return decide(spec, runs, study.get("swept", []))
