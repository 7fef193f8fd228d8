"""Open-answer VQA: greedy generation after `<image> Question: q Answer:`, exact match.

The model answers in a sentence, as the training text does ("The red object is a circle.");
the prediction counts if, normalised, it equals the answer template filled with any answer
true of the scene (for "Which colour can be seen?" every colour present is right).
"""

from __future__ import annotations

from typing import Any

from vloom.evaluate.generation import greedy_generate
from vloom.evaluate.metrics import exact_match
from vloom.evaluate.records import EXAMPLES, open_records
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import answer_text, image_prompt, read_table_rows
from vloom.sequence import encode_text

VQA_OPEN_COLUMNS = ("image", "question", "answers", "qtype")
STOP = ("\n", "Question:", ".")


def accepted(row: dict[str, Any]) -> list[str]:
    """Right answers as sentences (template filled) and as the bare short answers."""
    answers = [a for a in row["answers"] if a]
    return [answer_text(row, a) for a in answers] + answers


def open_prompt(question: str) -> str:
    """The text after the image: the world's QA form, which the model answers in a sentence."""
    return f"Question: {question} Answer:"


_ALL = object()


def read_open_rows(ctx: EvalContext, limit: Any = _ALL) -> list[dict[str, Any]]:
    path = ctx.data_dir / "vqa_open.parquet"
    rows = read_table_rows(path, VQA_OPEN_COLUMNS, ctx.max_examples if limit is _ALL else limit)
    for i, r in enumerate(rows):
        if not r["answers"] or not any(r["answers"]):
            raise ValueError(f"{path}: row {i} ({r.get('id')}) has no answer")
    return rows


def open_accuracy(correct: list[bool], qtypes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"accuracy": sum(correct) / max(len(correct), 1)}
    for qt in sorted(set(qtypes)):
        idx = [i for i, t in enumerate(qtypes) if t == qt]
        out[f"accuracy_{qt}"] = sum(correct[i] for i in idx) / len(idx)
    out["n"] = len(correct)
    return out


@register("vqa_open", modality="vision-language", scoring="generation")
def vqa_open(ctx: EvalContext, max_new_tokens: int = 16) -> dict[str, Any]:
    rows = read_open_rows(ctx)
    m, tok = ctx.model, ctx.tokenizer
    path = ctx.data_dir / "vqa_open.parquet"
    prompts, images = [], []
    for i, r in enumerate(rows):
        slots, pixels = image_prompt(m, r["image"], f"{path}: row {i} ({r.get('id')})")
        prompts.append(m.layout.prefix + slots + encode_text(tok, open_prompt(r["question"])))
        images.append(pixels)
    preds = greedy_generate(
        m, tok, prompts, images, ctx.device, max_new_tokens, STOP, ctx.batch_size
    )
    correct = [exact_match(p, accepted(r)) for p, r in zip(preds, rows, strict=True)]
    out = open_accuracy(correct, [r["qtype"] for r in rows])
    out["exact_match"] = out["accuracy"]
    if ctx.records:
        out[EXAMPLES] = open_records(rows, preds, correct, path)
    return out
