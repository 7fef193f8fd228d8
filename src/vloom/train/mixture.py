"""Which sequences a step trains on: stages, the image schedule and per-stage source mixtures.

Two ways to choose a step's rows, both pure functions of (seed, step) so a resumed run,
or one on another number of ranks, sees the same batches:
- image ratio (the default): before `image_start_fraction` of the steps every sequence is
  text-only; from then on each is image-bearing with probability `image_text_ratio` (the
  stage's own ratio where it sets one). Within each micro-batch image rows come first.
- source mixture (a stage with `mixture`): each sequence's source is drawn by the shares,
  from the row source tags `vloom pack` writes. While images are off (before
  `image_start_fraction`, or in the text-only control) rows come from the text stream.
A `kind: sft` stage reads every row from the SFT stream (the `sft` section's packed
conversations, with and without images, as packed).
"""

from __future__ import annotations

import numpy as np

from vloom.config import StageConfig, TrainConfig

TEXT, IMAGE, SFT = "text", "image", "sft"


def stage_bounds(cfg: TrainConfig) -> list[tuple[int, int]]:
    """[start, end) optimizer steps of each stage."""
    out, start, acc = [], 0, 0.0
    for st in cfg.stages:
        if st.steps is not None:
            end = start + st.steps
        else:
            acc += st.fraction if st.fraction is not None else 1.0
            end = int(round(acc * cfg.steps))
        out.append((start, end))
        start = end
    out[-1] = (out[-1][0], cfg.steps)
    return out


def stage_at(step: int, cfg: TrainConfig) -> int:
    """Index of the stage that owns `step`."""
    for i, (_, end) in enumerate(stage_bounds(cfg)):
        if step < end:
            return i
    return len(cfg.stages) - 1


def images_on(step: int, cfg: TrainConfig) -> bool:
    if cfg.image_start_fraction >= 1.0:
        return False
    return step >= int(round(cfg.image_start_fraction * cfg.steps))


def image_slots(
    step: int, n: int, cfg: TrainConfig, seed: int, ratio: float | None = None
) -> np.ndarray:
    """Boolean [n]: which of the step's n sequences come from the image stream."""
    ratio = cfg.image_text_ratio if ratio is None else ratio
    if not images_on(step, cfg) or ratio <= 0:
        return np.zeros(n, dtype=bool)
    rng = np.random.default_rng([seed, step, 7919])
    return rng.random(n) < ratio


def resolve_mixture(stage: StageConfig, sources: list[str]) -> dict[str, float]:
    """Stage mixture keys -> packed source names with normalised shares; unknown key: error."""
    assert stage.mixture is not None
    out: dict[str, float] = {}
    for key, share in stage.mixture.items():
        # a data source's name (world -> world/pairs, world/text, ...) or a tag's last part
        hits = [s for s in sources if key in (s, s.rsplit("/", 1)[-1], s.split("/", 1)[0])]
        if not hits:
            raise ValueError(
                f"stage {stage.name}: mixture source {key!r} is not in the packed data "
                f"(sources: {', '.join(sources) or 'none'})"
            )
        for h in hits:  # a short key matching several sources splits its share evenly
            out[h] = out.get(h, 0.0) + share / len(hits)
    total = sum(out.values())
    return {k: v / total for k, v in out.items() if v > 0}


def step_plan(
    step: int, cfg: TrainConfig, seed: int, sources: list[str] | None = None
) -> list[str]:
    """The stream of each of the step's global batch_size x grad_accum sequences, in order.

    Stream names are `text`, `image`, or `src:<source>` for a stage mixture.
    """
    n = cfg.batch_size * cfg.grad_accum
    stage = cfg.stages[stage_at(step, cfg)]
    if stage.kind == "sft":
        return [SFT] * n
    if stage.mixture is not None and images_on(step, cfg):
        shares = resolve_mixture(stage, sources or [])
        names = sorted(shares)
        rng = np.random.default_rng([seed, step, 104729])
        picks = rng.choice(len(names), size=n, p=[shares[k] for k in names])
        return [f"src:{names[i]}" for i in picks]
    slots = image_slots(step, n, cfg, seed, stage.image_text_ratio)
    plan: list[str] = []
    for m in range(cfg.grad_accum):
        sl = slots[m * cfg.batch_size : (m + 1) * cfg.batch_size]
        k = int(sl.sum())
        plan += [IMAGE] * k + [TEXT] * (len(sl) - k)
    return plan
