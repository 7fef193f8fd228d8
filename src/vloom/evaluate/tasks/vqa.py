"""Held-out VQA, 4-way multiple choice ranked by likelihood: `<image> Question: q Answer: option`."""

from __future__ import annotations

from vloom.evaluate.scoring import mc_result, option_scores
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import answer_text, image_prompt, read_rows
from vloom.sequence import encode_text


@register("vqa", modality="vision-language")
def vqa(ctx: EvalContext) -> dict:
    path = ctx.data_dir / "vqa.parquet"
    rows = read_rows(path, ("image", "question", "options", "answer", "qtype"), ctx.max_examples)
    m, tok = ctx.model, ctx.tokenizer
    prompts, options, images = [], [], []
    for i, r in enumerate(rows):
        slots, pixels = image_prompt(m, r["image"], f"{path}: row {i} ({r.get('id')})")
        prompts.append(
            m.layout.prefix + slots + encode_text(tok, f"Question: {r['question']} Answer:")
        )
        options.append([encode_text(tok, " " + answer_text(r, o)) for o in r["options"]])
        images.append(pixels)
    scores = option_scores(m, prompts, options, images, ctx.device, ctx.batch_size)
    return mc_result(rows, scores, ctx.records, image_path=path)
