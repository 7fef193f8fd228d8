"""Learning-rate schedules: linear warmup then cosine, or warmup-stable-decay (WSD).

The run follows one schedule over all its steps, except a stage that sets any LR field
(`lr`, `warmup_steps`, `schedule`, `min_lr_ratio`, `decay_fraction`): it runs its own
schedule over its own steps, re-warming from zero (unset fields come from `train`).
"""

from __future__ import annotations

import math

from vloom.config import TrainConfig


def schedule_lr(
    step: int, total: int, peak: float, floor: float, warmup: int, kind: str, decay_fraction: float
) -> float:
    """LR for step `step` (0-based) of a `total`-step schedule."""
    warm = min(warmup, max(total - 1, 0))
    if step < warm:
        return peak * (step + 1) / warm
    if kind == "cosine":
        progress = (step - warm) / max(total - warm, 1)
        return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))
    # WSD: hold the peak, then decay linearly to the floor over the last decay_fraction.
    decay_start = total - int(round(decay_fraction * total))
    if step < decay_start:
        return peak
    progress = (step - decay_start) / max(total - decay_start, 1)
    return peak + (floor - peak) * min(progress, 1.0)


def lr_at(step: int, cfg: TrainConfig, total: int | None = None) -> float:
    """LR for optimizer step `step` (0-based): the run's schedule, or its stage's own."""
    from vloom.train.mixture import stage_at, stage_bounds

    if total is None:
        si = stage_at(step, cfg)
        st = cfg.stages[si]
        if st.own_schedule:
            start, end = stage_bounds(cfg)[si]
            peak = st.lr if st.lr is not None else cfg.lr
            ratio = st.min_lr_ratio if st.min_lr_ratio is not None else cfg.min_lr_ratio
            return schedule_lr(
                step - start,
                end - start,
                peak,
                peak * ratio,
                st.warmup_steps if st.warmup_steps is not None else cfg.warmup_steps,
                st.schedule or cfg.schedule,
                st.decay_fraction if st.decay_fraction is not None else cfg.decay_fraction,
            )
    total = total or cfg.steps
    return schedule_lr(
        step,
        total,
        cfg.lr,
        cfg.lr * cfg.min_lr_ratio,
        cfg.warmup_steps,
        cfg.schedule,
        cfg.decay_fraction,
    )
