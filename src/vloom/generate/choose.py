"""Next-token choice from one step's logits: greedy, or temperature / top-k / top-p sampling
by inverse CDF, driven by uniforms the caller draws (so the caller owns reproducibility)."""

from __future__ import annotations

import torch


def choose_tokens(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float, u: torch.Tensor | None
) -> torch.Tensor:
    """logits [B, V] (banned tokens already -inf), u [B] uniforms in [0, 1) -> ids [B].

    temperature 0, or top_k 1, is argmax (u unused). Otherwise the distribution
    softmax(logits / T) keeps its top_k most likely tokens (0 = all) and the smallest
    most-likely set whose mass reaches top_p; the token is the first kept one whose
    cumulative mass exceeds u * kept mass. Without a filter the mass accumulates in vocabulary
    order (no sort); with one, in descending probability (a stable sort, or topk for top_k
    alone)."""
    if temperature == 0 or top_k == 1:
        return logits.argmax(-1)
    assert u is not None, "sampling needs one uniform per row"
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [B, V]
    if top_k == 0 and top_p >= 1.0:
        return _inverse_cdf(probs, u)
    if top_p >= 1.0:
        p, order = probs.topk(min(top_k, probs.shape[-1]), dim=-1)  # [B, k], descending
    else:
        p, order = probs.sort(dim=-1, descending=True, stable=True)
        keep = (p.cumsum(-1) - p) < top_p  # mass before this token is still short of p
        if top_k > 0:
            keep[:, top_k:] = False
        p = p * keep
    return order.gather(-1, _inverse_cdf(p, u).unsqueeze(-1)).squeeze(-1)


def _inverse_cdf(p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The index of the first column whose running sum of p [B, N] exceeds u * row sum."""
    cum = p.cumsum(-1)  # [B, N]
    x = (u.to(cum) * cum[:, -1]).unsqueeze(-1)  # [B, 1]
    idx = torch.searchsorted(cum, x, right=True).squeeze(-1)
    # u * mass can round up to the mass itself: stay on the last column of nonzero mass.
    last = p.shape[-1] - 1 - (p.flip(-1) > 0).int().argmax(-1)
    return torch.minimum(idx, last)
