"""Captioning: greedy caption from `<bos> <image>`, scored with CIDEr and BLEU vs references."""

from __future__ import annotations

import importlib
from typing import Any

from vloom.evaluate.generation import greedy_generate
from vloom.evaluate.metrics import caption_scores
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import image_prompt, read_table_rows


def need_caption_metrics() -> None:
    """Fail before generating, not after: CIDEr and BLEU come from the optional `eval` extra."""
    for mod in ("pycocoevalcap", "sacrebleu"):
        try:
            importlib.import_module(mod)
        except ImportError:
            raise ImportError(
                f"caption_gen scores with CIDEr and BLEU, which need {mod}: "
                "pip install 'vloom[eval]'",
                name=mod,
            ) from None


def generate_captions(
    ctx: EvalContext, rows: list[dict[str, Any]], max_new_tokens: int
) -> list[str]:
    m = ctx.model
    prompts, images = [], []
    for i, r in enumerate(rows):
        slots, pixels = image_prompt(m, r["image"], f"caption row {i} ({r.get('id')})")
        prompts.append(m.layout.prefix + slots)
        images.append(pixels)
    return greedy_generate(
        m, ctx.tokenizer, prompts, images, ctx.device, max_new_tokens, ("\n",), ctx.batch_size
    )


@register("caption_gen", modality="vision-language", scoring="generation")
def caption_gen(ctx: EvalContext, max_new_tokens: int = 48) -> dict[str, Any]:
    path = ctx.data_dir / "caption_refs.parquet"
    rows = read_table_rows(path, ("image", "references"), ctx.max_examples)
    for i, r in enumerate(rows):
        if not r["references"] or not all(r["references"]):
            raise ValueError(f"{path}: row {i} ({r.get('id')}) has an empty reference caption")
    need_caption_metrics()
    preds = generate_captions(ctx, rows, max_new_tokens)
    return {**caption_scores(preds, [r["references"] for r in rows]), "n": len(rows)}
