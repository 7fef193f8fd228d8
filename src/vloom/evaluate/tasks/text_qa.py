"""Text-only 4-way QA: a scene described in words, then `Question: q Answer: option`.

With num_fewshot=k, k other solved questions of the same file (chosen with the eval seed)
come first in the prompt, each with its right answer.
"""

from __future__ import annotations

import random
from typing import Any

from vloom.evaluate.scoring import mc_result, option_scores
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import answer_text, read_rows
from vloom.sequence import encode_text

TEXT_QA_COLUMNS = ("context", "question", "options", "answer", "qtype")


def _shot(r: dict[str, Any], solved: bool) -> str:
    head = f"{r['context']} " if r.get("context") else ""
    tail = f" {answer_text(r, r['options'][int(r['answer'])])}" if solved else ""
    return f"{head}Question: {r['question']} Answer:{tail}"


def fewshot_prompts(
    rows: list[dict[str, Any]], pool: list[dict[str, Any]], k: int, seed: int
) -> list[str]:
    """Each row's prompt preceded by k solved examples from pool (never the row itself)."""
    if k < 0:
        raise ValueError(f"num_fewshot must be >= 0, got {k}")
    if k and len(pool) <= k:
        raise ValueError(f"num_fewshot={k} needs more than {k} examples; the file has {len(pool)}")
    rng = random.Random(f"fewshot-{seed}")
    out = []
    for r in rows:
        shots = []
        if k:
            # The target itself is never its own example (matched by id: rows and pool are
            # separate reads of the file).
            others = [p for p in pool if p is not r and p.get("id", p) != r.get("id", r)]
            shots = [_shot(p, True) for p in rng.sample(others, k)]
        out.append(" ".join(shots + [_shot(r, False)]))
    return out


def score_text_mc(
    ctx: EvalContext, file: str, num_fewshot: int = 0, pool_file: str | None = None
) -> dict[str, Any]:
    rows = read_rows(ctx.data_dir / file, TEXT_QA_COLUMNS, ctx.max_examples)
    pool = read_rows(ctx.data_dir / (pool_file or file), TEXT_QA_COLUMNS, None)
    tok = ctx.tokenizer
    texts = fewshot_prompts(rows, pool, num_fewshot, ctx.seed)
    prompts = [ctx.model.layout.prefix + encode_text(tok, t) for t in texts]
    options = [[encode_text(tok, " " + answer_text(r, o)) for o in r["options"]] for r in rows]
    scores = option_scores(
        ctx.model, prompts, options, [None] * len(rows), ctx.device, ctx.batch_size
    )
    return mc_result(rows, scores, ctx.records)


@register("text_qa", modality="text")
def text_qa(ctx: EvalContext, num_fewshot: int = 0) -> dict[str, Any]:
    res = score_text_mc(ctx, "text_qa.parquet", num_fewshot)
    return {**res, "num_fewshot": num_fewshot} if num_fewshot else res
