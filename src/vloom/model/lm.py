"""Decoder-only language model: RMSNorm, RoPE, SwiGLU, SDPA attention (Llama-shaped)."""

from __future__ import annotations

import torch
from torch import nn

from vloom.config import ModelConfig
from vloom.model.layers import Block, KVCache, RMSNorm, document_mask, rope_cache, rope_tables


class LanguageModel(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int, max_seq_len: int) -> None:
        super().__init__()
        self.cfg, self.vocab_size, self.max_seq_len = cfg, vocab_size, max_seq_len
        self.embed_tokens = nn.Embedding(vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(
            Block(
                cfg.d_model,
                cfg.n_heads,
                cfg.n_kv_heads,
                cfg.ffn_mult,
                causal=True,
                norm_eps=cfg.norm_eps,
                qkv_bias=cfg.qkv_bias,
            )
            for _ in range(cfg.n_layers)
        )
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        # full-width tables [T, Dh] (`rope_tables`), built once for every layer and step
        cos, sin = rope_tables(*rope_cache(max_seq_len, cfg.d_model // cfg.n_heads, cfg.rope_theta))
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def new_cache(self) -> KVCache:
        return KVCache(len(self.layers))

    def forward_embeds(
        self,
        x: torch.Tensor,
        cache: KVCache | None = None,
        segments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states -> logits. x: [B, T, D] input embeddings; with a cache, the T
        positions after the cached ones (the cache then holds them too). segments [B, T]:
        each position's document in its row (-1 padding): attention stays inside a document
        and RoPE positions restart at each document's start."""
        T = x.shape[1] + (cache.pos if cache is not None else 0)
        assert T <= self.max_seq_len, (
            f"sequence of {T} tokens exceeds max_seq_len {self.max_seq_len}"
        )
        rope, mask = (self.rope_cos, self.rope_sin), None
        if segments is not None:
            if cache is not None:
                raise ValueError("document masking (segments) does not decode with a KV cache")
            if segments.shape != x.shape[:2]:
                raise ValueError(f"segments {tuple(segments.shape)} != tokens {tuple(x.shape[:2])}")
            mask, pos = document_mask(segments)
            rope = (self.rope_cos[pos], self.rope_sin[pos])  # [B, T, Dh] per position
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, None, (cache, i) if cache is not None else None, mask)
        if cache is not None:
            cache.pos = T
        return self.lm_head(self.norm(x))  # [B, T, V]
