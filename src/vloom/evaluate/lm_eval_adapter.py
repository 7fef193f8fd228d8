"""lm-evaluation-harness adapter: `@register_model("vloom")`, so any lm_eval task can score a
vloom checkpoint (text only; images are not passed through).

    lm_eval.simple_evaluate(model="vloom", model_args="pretrained=RUN/checkpoints/final", ...)

or `vloom lm-eval CHECKPOINT --tasks ...`. Importing this module registers the class.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from vloom.evaluate.generation import greedy_generate
from vloom.evaluate.harness import load_for_harness
from vloom.evaluate.scoring import sequence_loss
from vloom.sequence import encode_text


@register_model("vloom")
class VloomLM(LM):
    def __init__(
        self,
        pretrained: str,
        tokenizer: str | None = None,
        batch_size: int | str = 16,
        device: str = "cpu",
        max_gen_toks: int = 32,
        quiet: bool = True,
        **_: Any,  # lm_eval passes extra settings (max_batch_size, ...) that do not apply
    ) -> None:
        super().__init__()
        self.model, self.tok, self._device, self.batch_size = load_for_harness(
            pretrained, tokenizer, device, batch_size
        )
        self.max_gen_toks = int(max_gen_toks)
        self.quiet = quiet
        self.prefix = self.model.layout.prefix  # [bos], or nothing for a tokenizer without one

    def _split(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of context (after <bos>) and continuation, tokenised as one string so
        merges across the boundary match training."""
        whole = encode_text(self.tok, context + continuation)
        ctx = encode_text(self.tok, context)
        if whole[: len(ctx)] == ctx and len(whole) > len(ctx):
            return self.prefix + ctx, whole[len(ctx) :]
        return self.prefix + ctx, encode_text(self.tok, continuation)

    @torch.no_grad()
    def loglikelihood(
        self, requests: list[Any], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        pairs = [self._split(*r.args) for r in requests]
        limit = self.model.lm.max_seq_len
        out: list[tuple[float, bool]] = []
        for s in tqdm(
            range(0, len(pairs), self.batch_size),
            disable=self.quiet or disable_tqdm,
            desc="loglikelihood",
        ):
            chunk = pairs[s : s + self.batch_size]
            seqs = []
            for ctx, cont in chunk:
                if not cont:
                    raise ValueError("lm-eval asked for the likelihood of an empty continuation")
                seqs.append((ctx + cont)[-(limit + 1) :][:-1])  # inputs; keep the end
            T = max(len(x) for x in seqs)
            tokens = torch.full((len(seqs), T), self.model.layout.pad, dtype=torch.long)
            for i, x in enumerate(seqs):
                tokens[i, : len(x)] = torch.tensor(x)
            logits, _ = self.model(tokens.to(self._device))
            logp = F.log_softmax(logits.float(), dim=-1)
            for i, (_ctx, cont) in enumerate(chunk):
                n = len(seqs[i])
                cont = cont[-n:]  # a continuation longer than the window keeps its end
                pos = torch.arange(n - len(cont), n)
                tgt = torch.tensor(cont, device=logp.device)
                lp = logp[i, pos, tgt]
                greedy = bool((logp[i, pos].argmax(-1) == tgt).all())
                out.append((float(lp.sum()), greedy))
        return out

    @torch.no_grad()
    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Whole-text log-likelihood in disjoint windows of the model's context (as text_ppl)."""
        win = self.model.lm.max_seq_len
        out = []
        for r in tqdm(requests, disable=self.quiet or disable_tqdm, desc="rolling"):
            ids = self.prefix + encode_text(self.tok, r.args[0])
            total = 0.0
            for s in range(0, len(ids) - 1, win):
                nll, _ = sequence_loss(self.model, ids[s : s + win + 1], 1, None, self._device)
                total += nll
            out.append(-total)
        return out

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        out = []
        for r in tqdm(requests, disable=self.quiet or disable_tqdm, desc="generate"):
            context, kw = r.args[0], dict(r.args[1] if len(r.args) > 1 else {})
            until = kw.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            n = int(kw.get("max_gen_toks", self.max_gen_toks))
            prompt = self.prefix + encode_text(self.tok, context)
            out += greedy_generate(
                self.model, self.tok, [prompt], [None], self._device, n, until, 1
            )
        return out
