"""A question over an interleaved document with several images, multiple choice by likelihood.

The document is the corpus's own kind, asked as the corpus asks: `Figure 1. <image> Question:
... Answer: ... Figure 2. <image> Question: What shape is the red object? Answer: The red
object is a {}.` The question is about the last figure; the earlier ones and their solved
questions are in context, so a model has to read the right image (synth/evalsets.py). Each
image takes its own number of `<image>` tokens. A document longer than the model's context is
skipped and counted (`skipped_too_long`).
"""

from __future__ import annotations

from typing import Any

from vloom.evaluate.scoring import mc_result, option_scores
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import answer_text, interleaved_input, read_rows
from vloom.sequence import encode_text


@register("multi_image", modality="vision-language")
def multi_image(ctx: EvalContext) -> dict[str, Any]:
    path = ctx.data_dir / "multi_image.parquet"
    rows = read_rows(
        path, ("texts", "images", "question", "options", "answer", "qtype"), ctx.max_examples
    )
    m, tok = ctx.model, ctx.tokenizer
    prompts, options, images, kept = [], [], [], []
    too_long = 0
    for i, r in enumerate(rows):
        texts, ims = r["texts"] or [], r["images"] or []
        if len(texts) != len(ims) or any(
            (t is None) == (b is None) for t, b in zip(texts, ims, strict=False)
        ):
            raise ValueError(
                f"{path}: row {i} ({r.get('id')}): texts and images must align with exactly "
                "one non-null per position"
            )
        # Each image takes as many <image> tokens as it makes (dynamic resolution: its own).
        ctx_ids, pics = interleaved_input(m, tok, texts, ims, f"{path}: row {i} ({r.get('id')})")
        prompt = ctx_ids + encode_text(tok, f" Question: {r['question']} Answer:")
        opts = [encode_text(tok, " " + answer_text(r, o)) for o in r["options"]]
        if len(prompt) + max(len(o) for o in opts) > m.lm.max_seq_len:
            too_long += 1  # images cannot be cut away: counted, not scored
            continue
        kept.append(i)
        prompts.append(prompt)
        options.append(opts)
        images.append(pics)
    scores = option_scores(m, prompts, options, images, ctx.device, ctx.batch_size)
    out = mc_result(
        [rows[i] for i in kept], scores, ctx.records, path, column="images", row_index=kept
    )
    out["skipped_too_long"] = too_long
    return out
