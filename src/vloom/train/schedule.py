"""Learning-rate schedules: linear warmup then cosine, or warmup-stable-decay (WSD)."""

from __future__ import annotations

import math

from vloom.config import TrainConfig


def lr_at(step: int, cfg: TrainConfig, total: int | None = None) -> float:
    """LR for optimizer step `step` (0-based) of `total` steps."""
    total = total or cfg.steps
    peak, floor = cfg.lr, cfg.lr * cfg.min_lr_ratio
    warm = min(cfg.warmup_steps, max(total - 1, 0))
    if step < warm:
        return peak * (step + 1) / warm
    if cfg.schedule == "cosine":
        progress = (step - warm) / max(total - warm, 1)
        return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))
    # WSD: hold the peak, then decay linearly to the floor over the last decay_fraction.
    decay_start = total - int(round(cfg.decay_fraction * total))
    if step < decay_start:
        return peak
    progress = (step - decay_start) / max(total - decay_start, 1)
    return peak + (floor - peak) * min(progress, 1.0)
