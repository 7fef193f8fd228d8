"""Held-out VQA, 4-way multiple choice ranked by likelihood: `<image> Question: q Answer: option`."""

from __future__ import annotations

import torch

from vloom.evaluate.scoring import accuracy_by_type, multiple_choice
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import answer_text, read_rows
from vloom.media import to_array
from vloom.sequence import BOS_ID, IMAGE_ID, encode_text


@register("vqa", modality="vision-language")
def vqa(ctx: EvalContext) -> dict:
    rows = read_rows(
        ctx.data_dir / "vqa.parquet",
        ("image", "question", "options", "answer", "qtype"),
        ctx.max_examples,
    )
    m, tok = ctx.model, ctx.tokenizer
    prompts, options, images = [], [], []
    for r in rows:
        pixels = torch.from_numpy(to_array(r["image"], m.vision.image_size))[None]
        prompts.append(
            [BOS_ID]
            + [IMAGE_ID] * m.tokens_per_image
            + encode_text(tok, f"Question: {r['question']} Answer:")
        )
        options.append([encode_text(tok, " " + answer_text(r, o)) for o in r["options"]])
        images.append(pixels)
    picks = multiple_choice(m, prompts, options, images, ctx.device, ctx.batch_size)
    return accuracy_by_type(picks, [int(r["answer"]) for r in rows], [r["qtype"] for r in rows])
