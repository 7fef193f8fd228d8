"""World knowledge in text only: which colours, shapes, sizes and places exist, no context.

A sanity check of the vocabulary's roles, not a measure that separates settings: the synthetic
world's text teaches no fact outside a scene beyond them, and a study model is at 1.00 by step
200 of 640, so the default study leaves it out (configs/study.yaml)."""

from __future__ import annotations

from typing import Any

from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.text_qa import score_text_mc


@register("world_qa", modality="text")
def world_qa(ctx: EvalContext, num_fewshot: int = 0) -> dict[str, Any]:
    res = score_text_mc(ctx, "world_qa.parquet", num_fewshot)
    return {**res, "num_fewshot": num_fewshot} if num_fewshot else res


@register("fewshot_qa", modality="text")
def fewshot_qa(ctx: EvalContext, num_fewshot: int = 2, source: str = "text_qa") -> dict[str, Any]:
    """The same questions 0-shot and k-shot: does the model use solved examples in context?"""
    if source not in ("text_qa", "world_qa"):
        raise ValueError(f"fewshot_qa: source must be text_qa or world_qa, not {source!r}")
    if num_fewshot < 1:
        raise ValueError(f"fewshot_qa: num_fewshot must be >= 1, got {num_fewshot}")
    zero = score_text_mc(ctx, f"{source}.parquet", 0)
    k = score_text_mc(ctx, f"{source}.parquet", num_fewshot)
    out: dict[str, Any] = dict(k)  # headline: k-shot
    out["accuracy_0shot"] = zero["accuracy"]
    out[f"accuracy_{num_fewshot}shot"] = k["accuracy"]
    out["fewshot_gain"] = k["accuracy"] - zero["accuracy"]
    out["num_fewshot"] = num_fewshot
    return out
