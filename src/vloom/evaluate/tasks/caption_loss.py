"""Caption loss: mean NLL of a held-out caption's tokens given its image."""

from __future__ import annotations

from vloom.doc import read_documents
from vloom.evaluate.scoring import sequence_loss
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import image_prompt
from vloom.sequence import encode_text


@register("caption_loss", modality="vision-language", scoring="perplexity")
def caption_loss(ctx: EvalContext) -> dict:
    path = ctx.data_dir / "captions.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: evaluation file not found")
    m = ctx.model
    nll, n = 0.0, 0
    for i, d in enumerate(read_documents(path)):
        if ctx.max_examples and i >= ctx.max_examples:
            break
        ims = [im for im in d.images if im is not None]
        caption = " ".join(t for t in d.texts if t is not None)
        if len(ims) != 1:
            continue
        slots, pixels = image_prompt(m, ims[0], f"{path}: document {i} ({d.id})")
        prompt = m.layout.prefix + slots
        seq = (prompt + encode_text(ctx.tokenizer, caption) + [m.layout.eos])[
            : m.lm.max_seq_len + 1
        ]
        a, b = sequence_loss(m, seq, len(prompt), pixels, ctx.device)
        nll, n = nll + a, n + b
    return {"loss": nll / max(n, 1), "tokens": n}
