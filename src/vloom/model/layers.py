"""Building blocks shared by the language model and the vision encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            # torch's composite of the formula below, run in C++ (no Python between its ops):
            # the same numbers bit for bit, forward and backward (test_layers_equivalence.py)
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


def rope_cache(
    seq_len: int, head_dim: int, theta: float, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables [T, head_dim/2] for rotary embeddings (half-split layout, as Llama in HF)."""
    inv = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    )
    t = torch.arange(seq_len, device=device, dtype=torch.float32)
    freqs = torch.outer(t, inv)
    return freqs.cos(), freqs.sin()


def rope_tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half tables [..., Dh/2] (`rope_cache`) -> full-width (cos, signed sin) [..., Dh] for
    `apply_rope`: [cos, cos] and [-sin, sin]."""
    return torch.cat([cos, cos], dim=-1), torch.cat([-sin, sin], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, T, H, Dh] (heads after positions) by its positions' angles, half-split
    (HF Llama's rotate_half convention). cos/sin: full-width tables from `rope_tables`, [T, Dh]
    (positions 0..T-1 of every row) or [B, T, Dh] (per-row positions).

    x * [cos, cos] + [x2, x1] * [-sin, sin] is [x1 cos - x2 sin, x2 cos + x1 sin] bit for bit
    (negating a product is exact): two multiplies and an add over contiguous rows, where the
    slices-and-cat form made four multiplies over strided halves and a cat."""
    cos, sin = cos[..., None, :].to(x.dtype), sin[..., None, :].to(x.dtype)  # over heads
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * sin


def document_mask(segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """segments [B, T] (document index of each position, -1 = padding) -> (attention mask
    [B, 1, T, T], True = may attend; positions [B, T] counted from each document's start).

    A position sees the earlier positions of its own document; padding sees only itself
    (every query keeps one key, so softmax never meets an all-masked row)."""
    B, T = segments.shape
    idx = torch.arange(T, device=segments.device)
    same = segments[:, :, None] == segments[:, None, :]
    real = (segments >= 0)[:, :, None]
    causal = torch.ones(T, T, dtype=torch.bool, device=segments.device).tril()
    mask = (same & real & causal) | torch.eye(T, dtype=torch.bool, device=segments.device)
    # a document starts where the index changes; positions count from the latest start
    starts = torch.zeros_like(segments)
    starts[:, 1:] = torch.where(segments[:, 1:] != segments[:, :-1], idx[1:], 0)
    positions = idx - starts.cummax(dim=1).values
    return mask[:, None], positions


def segment_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: list[int], causal: bool = False
) -> torch.Tensor:
    """Attention within each of the packed segments of q/k/v [1, H, T, Dh] (what flash-attn's
    cu_seqlens does): segments of equal length are gathered into one batch, so the work is
    sum(len^2), never T^2, and nothing is padded. Returns [1, H, T, Dh]."""
    assert q.shape[0] == 1 and sum(lengths) == q.shape[2], (q.shape, sum(lengths))
    starts = [0]
    for n in lengths[:-1]:
        starts.append(starts[-1] + n)
    groups: dict[int, list[int]] = {}
    for s, n in zip(starts, lengths, strict=True):
        groups.setdefault(n, []).append(s)
    order, outs = [], []
    for n, ss in groups.items():
        idx = torch.tensor(ss, device=q.device)[:, None] + torch.arange(n, device=q.device)
        idx = idx.reshape(-1)  # [g * n] positions of this group's segments
        g = len(ss)
        qi, ki, vi = (t[0, :, idx].unflatten(1, (g, n)).transpose(0, 1) for t in (q, k, v))
        y = F.scaled_dot_product_attention(qi, ki, vi, is_causal=causal)  # [g, H, n, Dh]
        outs.append(y.transpose(0, 1).flatten(1, 2))  # [H, g * n, Dh]
        order.append(idx)
    inv = torch.empty(q.shape[2], dtype=torch.long, device=q.device)
    perm = torch.cat(order)
    inv[perm] = torch.arange(perm.numel(), device=q.device)
    return torch.cat(outs, dim=1)[:, inv][None]


class KVCache:
    """Keys and values of the positions already seen, per layer, for incremental decoding.

    Generation feeds the prompt once, then one token per step; each step attends to the
    cached keys instead of recomputing the whole prefix (O(T) per step, not O(T^2))."""

    def __init__(self, n_layers: int) -> None:
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers
        self.pos = 0  # positions cached so far (the next token's position)

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's k/v [B, Hkv, T, Dh]; return all of them."""
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v


class Attention(nn.Module):
    def __init__(
        self,
        dim: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        causal: bool = True,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.n_kv = n_kv_heads or n_heads
        self.head_dim = dim // n_heads
        self.causal = causal
        self.q_proj = nn.Linear(dim, n_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(dim, self.n_kv * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(dim, self.n_kv * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(n_heads * self.head_dim, dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        segments: list[int] | None = None,
        cache: tuple[KVCache, int] | None = None,
        doc_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """segments: lengths of independent sequences packed into x's one row (images of a
        batch); a position attends only within its own segment. cache: (KVCache, layer
        index) for incremental decoding; x then holds the positions after the cached ones.
        doc_mask [B, 1, T, T] (`document_mask`): documents packed into each row; rope then
        holds each position's own cos/sin [B, T, Dh/2 or Dh]. rope: half tables (`rope_cache`)
        or full-width ones (`rope_tables`, what the LM keeps: built once, not per layer)."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim)  # [B, T, H, Dh]
        k = self.k_proj(x).view(B, T, self.n_kv, self.head_dim)
        v = self.v_proj(x).view(B, T, self.n_kv, self.head_dim)
        p0 = cache[0].pos if cache is not None else 0
        if rope is not None:
            cos, sin = (
                rope if doc_mask is not None else (rope[0][p0 : p0 + T], rope[1][p0 : p0 + T])
            )
            if cos.shape[-1] != self.head_dim:  # half tables (the vision tower's 2-D rope)
                cos, sin = rope_tables(cos, sin)
            # rotated while contiguous, before the head transpose: SDPA reads the strided view
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, Dh]
        if cache is not None:
            k, v = cache[0].update(cache[1], k, v)
        if self.n_kv != self.n_heads:
            rep = self.n_heads // self.n_kv
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if p0 > 0:
            # new queries sit after the cached keys: query i sees keys 0..p0+i
            mask = None
            if self.causal and T > 1:
                mask = torch.ones(T, p0 + T, dtype=torch.bool, device=x.device).tril(p0)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        elif doc_mask is not None:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=doc_mask)
        elif segments is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            y = segment_attention(q, k, v, segments, self.causal)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))  # [B, T, D]


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def swiglu_hidden(dim: int, mult: float) -> int:
    return max(8, int(round(dim * mult / 8)) * 8)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(
        self,
        dim: int,
        n_heads: int,
        n_kv_heads: int | None,
        ffn_mult: float,
        causal: bool,
        norm_eps: float = 1e-6,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(dim, norm_eps)
        self.self_attn = Attention(dim, n_heads, n_kv_heads, causal, qkv_bias)
        self.post_attention_layernorm = RMSNorm(dim, norm_eps)
        self.mlp = SwiGLU(dim, swiglu_hidden(dim, ffn_mult))

    def forward(
        self,
        x: torch.Tensor,
        rope=None,
        segments: list[int] | None = None,
        cache: tuple[KVCache, int] | None = None,
        doc_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, segments, cache, doc_mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class SiglipAttention(nn.Module):
    """Bidirectional multi-head attention with biases on q/k/v/out (SigLIP / CLIP)."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = (
            p(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, T, Dh]
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, -1))


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)  # OpenAI CLIP's activation


# transformers' hidden_act names: gelu_tanh = "gelu_pytorch_tanh" (SigLIP), quick_gelu (CLIP)
TOWER_ACTS = {
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "quick_gelu": quick_gelu,
    "gelu": F.gelu,
}


class SiglipMLP(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str = "gelu_tanh") -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = TOWER_ACTS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SiglipBlock(nn.Module):
    """transformers' SiglipEncoderLayer (and CLIPEncoderLayer, with act quick_gelu): x +
    attn(LN(x)), then x + mlp(LN(x)); parameter names match it so export is a prefix rename."""

    def __init__(
        self, dim: int, n_heads: int, mlp_hidden: int, eps: float = 1e-6, act: str = "gelu_tanh"
    ) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(dim, eps=eps)
        self.self_attn = SiglipAttention(dim, n_heads)
        self.layer_norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = SiglipMLP(dim, mlp_hidden, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))
