"""Held-out text perplexity: documents about unseen scenes, scored in windows of max_seq_len."""

from __future__ import annotations

import math

from vloom.doc import read_documents
from vloom.evaluate.scoring import sequence_loss
from vloom.evaluate.tasks import EvalContext, register
from vloom.sequence import encode_items


@register("text_ppl", modality="text", scoring="perplexity")
def text_ppl(ctx: EvalContext) -> dict:
    path = ctx.data_dir / "heldout_text.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: evaluation file not found")
    nll, n = 0.0, 0
    win = ctx.model.lm.max_seq_len
    for i, d in enumerate(read_documents(path)):
        if ctx.max_examples and i >= ctx.max_examples:
            break
        texts = [t for t in d.texts if t is not None]
        ids = encode_items(ctx.tokenizer, texts, 0, layout=ctx.model.layout)
        for s in range(0, len(ids) - 1, win):
            chunk = ids[s : s + win + 1]
            if len(chunk) < 2:
                continue
            a, b = sequence_loss(ctx.model, chunk, 1, None, ctx.device)
            nll, n = nll + a, n + b
    loss = nll / max(n, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50)), "tokens": n}
