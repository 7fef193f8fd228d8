"""Text-only 4-way QA: a scene described in words, then `Question: q Answer: option`."""

from __future__ import annotations

from vloom.evaluate.scoring import accuracy_by_type, multiple_choice
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import answer_text, read_rows
from vloom.sequence import BOS_ID, encode_text


@register("text_qa")
def text_qa(ctx: EvalContext) -> dict:
    rows = read_rows(
        ctx.data_dir / "text_qa.parquet",
        ("context", "question", "options", "answer", "qtype"),
        ctx.max_examples,
    )
    tok = ctx.tokenizer
    prompts = [
        [BOS_ID] + encode_text(tok, f"{r['context']} Question: {r['question']} Answer:")
        for r in rows
    ]
    options = [[encode_text(tok, " " + answer_text(r, o)) for o in r["options"]] for r in rows]
    picks = multiple_choice(
        ctx.model, prompts, options, [None] * len(rows), ctx.device, ctx.batch_size
    )
    return accuracy_by_type(picks, [int(r["answer"]) for r in rows], [r["qtype"] for r in rows])
