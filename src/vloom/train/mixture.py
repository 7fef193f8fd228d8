"""Which sequences a step trains on: the image schedule of the recipe.

Before `image_start_fraction` of the steps, every sequence is text-only. From then
on, each sequence is image-bearing with probability `image_text_ratio`. The draw
is a pure function of (seed, step), so a resumed run sees the same batches.
"""

from __future__ import annotations

import numpy as np

from vloom.config import TrainConfig


def images_on(step: int, cfg: TrainConfig) -> bool:
    if cfg.image_start_fraction >= 1.0:
        return False
    return step >= int(round(cfg.image_start_fraction * cfg.steps))


def image_slots(step: int, n: int, cfg: TrainConfig, seed: int) -> np.ndarray:
    """Boolean [n]: which of the step's n sequences come from the image stream."""
    if not images_on(step, cfg) or cfg.image_text_ratio <= 0:
        return np.zeros(n, dtype=bool)
    rng = np.random.default_rng([seed, step, 7919])
    return rng.random(n) < cfg.image_text_ratio


def stage_at(step: int, cfg: TrainConfig) -> int:
    """Index of the stage that owns `step`, from the stages' step fractions."""
    acc = 0.0
    for i, st in enumerate(cfg.stages):
        acc += st.fraction
        if step < int(round(acc * cfg.steps)):
            return i
    return len(cfg.stages) - 1
