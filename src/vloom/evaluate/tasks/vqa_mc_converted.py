"""The open VQA questions converted to multiple choice (see vloom.evaluate.convert).

Distractors come from the world's vocabulary for the question's role (the default generator;
`generator=none` leaves only the set's own answer space) and from the set. Scored like `vqa`;
run beside `vqa_open`, the results gain `shift_from_open*`: how much accuracy moves between
the open and the multiple-choice form, overall and per question type.
"""

from __future__ import annotations

from typing import Any

from vloom.evaluate.convert import convert_open_to_mc
from vloom.evaluate.scoring import accuracy_by_type, multiple_choice
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import answer_text, image_prompt
from vloom.evaluate.tasks.vqa_open import read_open_rows
from vloom.sequence import BOS_ID, encode_text


@register("vqa_mc_converted", modality="vision-language")
def vqa_mc_converted(
    ctx: EvalContext,
    num_options: int = 4,
    generator: str | None = "vloom.evaluate.convert:world_vocabulary",
) -> dict[str, Any]:
    # The answer space is the whole file's; the first max_examples questions are asked, the
    # same ones vqa_open asks (unless some are dropped, which `dropped` counts).
    gen = None if generator in (None, "", "none") else generator
    rows, stats = convert_open_to_mc(read_open_rows(ctx, None), num_options, gen, ctx.seed)
    rows = rows[: ctx.max_examples] if ctx.max_examples else rows
    m, tok = ctx.model, ctx.tokenizer
    prompts, images = [], []
    where = ctx.data_dir / "vqa_open.parquet"
    for r in rows:
        slots, pixels = image_prompt(m, r["image"], f"{where}: row {r.get('id')}")
        prompts.append([BOS_ID] + slots + encode_text(tok, f"Question: {r['question']} Answer:"))
        images.append(pixels)
    options = [[encode_text(tok, " " + answer_text(r, o)) for o in r["options"]] for r in rows]
    picks = multiple_choice(m, prompts, options, images, ctx.device, ctx.batch_size)
    out: dict[str, Any] = accuracy_by_type(
        picks, [int(r["answer"]) for r in rows], [r["qtype"] for r in rows]
    )
    out["dropped"] = sum(v for k, v in stats.items() if k != "distractors_from_generator")
    out["distractors_from_generator"] = stats["distractors_from_generator"]
    out["chance"] = 1 / num_options
    return out
