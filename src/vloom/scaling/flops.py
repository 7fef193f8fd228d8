"""Parameter and FLOP counts of the decoder LM, with each term named.

Kaplan et al. count non-embedding parameters N and C = 6N per training token; Hoffmann et
al. (Chinchilla) count all parameters and add the attention and output-layer FLOPs. Much of
the gap between their compute-optimal exponents comes from those choices at small scale
(Pearce & Song; Porian et al.), so every count is kept separately and the caller says which
one is N. Counts follow vloom's LM (RMSNorm, rotary, SwiGLU, grouped-query attention); norm
weights are left out (O(d) per layer). The vision encoder is not counted: its cost is per
image, not per token, and the LM sees an image as `tokens_per_image` ordinary positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LMShape:
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_hidden: int
    vocab_size: int
    seq_len: int
    tie_embeddings: bool = True


def swiglu_hidden(dim: int, mult: float) -> int:
    """As vloom.model.layers.swiglu_hidden (kept here so counting needs no torch import)."""
    return max(8, int(round(dim * mult / 8)) * 8)


def shape_from_config(cfg: dict[str, Any], vocab_size: int | None = None) -> LMShape:
    """The LM shape of a run's config.json (a dumped ExperimentConfig)."""
    m, p = cfg["model"], cfg["pack"]
    return LMShape(
        d_model=m["d_model"],
        n_layers=m["n_layers"],
        n_heads=m["n_heads"],
        n_kv_heads=m.get("n_kv_heads") or m["n_heads"],
        ffn_hidden=swiglu_hidden(m["d_model"], m.get("ffn_mult", 8 / 3)),
        vocab_size=vocab_size or p["vocab_size"],
        seq_len=p["seq_len"],
        tie_embeddings=m.get("tie_embeddings", True),
    )


def param_counts(s: LMShape) -> dict[str, int]:
    """non-embedding (attention + MLP weights), embedding, output layer, and their total."""
    head = s.d_model // s.n_heads
    attn = s.d_model * head * (2 * s.n_heads + 2 * s.n_kv_heads)  # q, o + k, v
    mlp = 3 * s.d_model * s.ffn_hidden
    nonemb = s.n_layers * (attn + mlp)
    emb = s.vocab_size * s.d_model
    out = 0 if s.tie_embeddings else s.vocab_size * s.d_model
    return {"nonembedding": nonemb, "embedding": emb, "output": out, "total": nonemb + emb + out}


def train_flops_per_token(s: LMShape) -> dict[str, float]:
    """Training FLOPs per token (forward + backward = 3 x forward), term by term.

    - `dense`: 6 x non-embedding parameters (Kaplan's C = 6N).
    - `attention`: QK^T and attention-weighted V, 2 x 2 x n_layers x seq_len x d_attn forward
      (Kaplan's 2 n_layer n_ctx d_attn per matmul, full context as they count it).
    - `output`: the vocabulary projection, 2 x d_model x vocab forward (counted whether or
      not it is tied to the embedding: tying shares weights, not FLOPs). Embedding lookups
      cost no FLOPs.
    """
    n = param_counts(s)["nonembedding"]
    d_attn = s.n_heads * (s.d_model // s.n_heads)
    dense = 6.0 * n
    attention = 3.0 * 2 * 2 * s.n_layers * s.seq_len * d_attn
    output = 3.0 * 2 * s.d_model * s.vocab_size
    return {
        "dense": dense,
        "attention": attention,
        "output": output,
        "total": dense + attention + output,
    }
