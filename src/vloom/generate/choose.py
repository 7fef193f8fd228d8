"""Next-token choice from one step's logits: greedy, or temperature / top-k / top-p sampling
by inverse CDF over the tokens sorted by probability, driven by uniforms the caller draws."""

from __future__ import annotations

import torch


def choose_tokens(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float, u: torch.Tensor | None
) -> torch.Tensor:
    """logits [B, V] (banned tokens already -inf), u [B] uniforms in [0, 1) -> ids [B].

    temperature 0 is argmax (u unused). Otherwise the distribution softmax(logits / T) keeps
    its top_k most likely tokens (0 = all) and the smallest most-likely set whose mass
    reaches top_p; the token is the first kept one whose cumulative mass exceeds u * kept
    mass. Ties sort stably, so top_k=1 picks argmax's token."""
    if temperature == 0:
        return logits.argmax(-1)
    assert u is not None, "sampling needs one uniform per row"
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [B, V]
    p, order = probs.sort(dim=-1, descending=True, stable=True)
    keep = torch.ones_like(p, dtype=torch.bool)
    if top_k > 0:
        keep[:, top_k:] = False
    if top_p < 1.0:
        keep &= (p.cumsum(-1) - p) < top_p  # mass before this token is still short of p
    p = p * keep
    cum = p.cumsum(-1)  # [B, V]
    x = (u.to(cum) * cum[:, -1]).unsqueeze(-1)  # [B, 1]
    idx = torch.searchsorted(cum, x, right=True).squeeze(-1)
    # u * mass can round up to the mass itself: stay on the last token of nonzero mass.
    idx = torch.minimum(idx, (p > 0).sum(-1) - 1)
    return order.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
