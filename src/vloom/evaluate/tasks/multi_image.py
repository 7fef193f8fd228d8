"""A question over an interleaved document with several images, multiple choice by likelihood.

`Figure 1. <image> Figure 2. <image> Question: Which picture shows the red circle, the first
or the second? Answer: The first picture shows the red circle.`
"""

from __future__ import annotations

from typing import Any

import torch

from vloom.evaluate.scoring import accuracy_by_type, multiple_choice
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import answer_text, pixels, read_rows
from vloom.sequence import encode_items, encode_text


@register("multi_image", modality="vision-language")
def multi_image(ctx: EvalContext) -> dict[str, Any]:
    path = ctx.data_dir / "multi_image.parquet"
    rows = read_rows(
        path, ("texts", "images", "question", "options", "answer", "qtype"), ctx.max_examples
    )
    m, tok = ctx.model, ctx.tokenizer
    prompts, options, images = [], [], []
    for i, r in enumerate(rows):
        texts, ims = r["texts"] or [], r["images"] or []
        if len(texts) != len(ims) or any((t is None) == (b is None) for t, b in zip(texts, ims)):
            raise ValueError(
                f"{path}: row {i} ({r.get('id')}): texts and images must align with exactly "
                "one non-null per position"
            )
        items = [t if t is not None else None for t in texts]
        ctx_ids = encode_items(tok, items, m.tokens_per_image, bos=True, eos=False)
        prompts.append(ctx_ids + encode_text(tok, f" Question: {r['question']} Answer:"))
        options.append([encode_text(tok, " " + answer_text(r, o)) for o in r["options"]])
        pics = [pixels(b, m.vision.image_size) for b in ims if b is not None]
        images.append(torch.cat(pics) if pics else None)
    picks = multiple_choice(m, prompts, options, images, ctx.device, ctx.batch_size)
    return accuracy_by_type(picks, [int(r["answer"]) for r in rows], [r["qtype"] for r in rows])
