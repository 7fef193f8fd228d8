"""The faster LM layers compute the numbers the earlier formulation computed, bit for bit:
RMSNorm through torch's `F.rms_norm`, RoPE as x * [cos, cos] + roll(x) * [-sin, sin] on the
[B, T, H, Dh] layout with tables built once. The earlier forward methods are kept here as the
reference and swapped in on the same model with the same weights and inputs: logits, loss and
every parameter's gradient must be equal (torch.equal, not a tolerance), on the plain causal
path, document masking, KV-cache decoding, grouped-query attention and the dynamic-resolution
vision tower's 2-D rotary (half tables, segment attention)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vloom.config import ModelConfig
from vloom.imagebatch import ImageBatch
from vloom.model.layers import Attention, RMSNorm, rope_cache, rope_tables, segment_attention
from vloom.model.vlm import VLM


def old_rmsnorm_forward(self: RMSNorm, x: torch.Tensor) -> torch.Tensor:
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
    return xf.type_as(x) * self.weight


def old_apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    lead = (slice(None), None) if cos.dim() == 3 else (None, None)
    cos, sin = cos[lead].to(x.dtype), sin[lead].to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def old_attention_forward(self: Attention, x, rope=None, segments=None, cache=None, doc_mask=None):
    B, T, _ = x.shape
    q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
    k = self.k_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
    v = self.v_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
    p0 = cache[0].pos if cache is not None else 0
    if rope is not None:
        cos, sin = rope if doc_mask is not None else (rope[0][p0 : p0 + T], rope[1][p0 : p0 + T])
        if cos.shape[-1] == self.head_dim:  # the LM now keeps full-width tables: their halves
            d = self.head_dim // 2
            cos, sin = cos[..., :d], sin[..., d:]
        q, k = old_apply_rope(q, cos, sin), old_apply_rope(k, cos, sin)
    if cache is not None:
        k, v = cache[0].update(cache[1], k, v)
    if self.n_kv != self.n_heads:
        rep = self.n_heads // self.n_kv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    if p0 > 0:
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
    return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


@pytest.fixture
def old_layers(monkeypatch):
    """A switch: old_layers(True) swaps the earlier forwards in, old_layers(False) restores."""
    new = (RMSNorm.forward, Attention.forward)

    def use(old: bool) -> None:
        rms, att = (old_rmsnorm_forward, old_attention_forward) if old else new
        monkeypatch.setattr(RMSNorm, "forward", rms)
        monkeypatch.setattr(Attention, "forward", att)

    return use


def _cfg(n_kv: int | None, resolution: str = "fixed") -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "d_model": 64,
            "n_layers": 2,
            "n_heads": 4,
            "n_kv_heads": n_kv,
            "vision": {
                "d_model": 32,
                "n_layers": 2,
                "n_heads": 2,
                "patch_size": 8,
                "merge": 2,
                "resolution": resolution,
            },
        }
    )


def _model(n_kv: int | None = None, resolution: str = "fixed") -> VLM:
    torch.manual_seed(0)
    m = VLM(_cfg(n_kv, resolution), vocab_size=97, max_seq_len=48, image_size=32)
    with torch.no_grad():  # norms off their all-ones start, so the weight's gradient matters
        for name, p in m.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))
    return m


def _step(m: VLM, tokens, targets, segments=None, autocast=False):
    """Logits, loss and each parameter's gradient of one forward and backward."""
    m.zero_grad(set_to_none=True)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast)
    with ctx:
        logits, loss = m(tokens, targets=targets, segments=segments)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    return logits.detach(), loss.detach(), grads


def _assert_same(new, old) -> None:
    (ln, sn, gn), (lo, so, go) = new, old
    assert torch.equal(ln, lo), (ln - lo).abs().max()
    assert torch.equal(sn, so), (sn, so)
    assert gn.keys() == go.keys() and gn, sorted(set(gn) ^ set(go))
    for name in gn:
        assert torch.equal(gn[name], go[name]), (name, (gn[name] - go[name]).abs().max())


def _tokens(b: int = 3, t: int = 40):
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(4, 97, (b, t + 1), generator=g)
    return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


@pytest.mark.parametrize("n_kv", [None, 2])
@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_training_step_is_the_old_one_bit_for_bit(old_layers, n_kv, autocast):
    m = _model(n_kv).train()
    tokens, targets = _tokens()
    new = _step(m, tokens, targets, autocast=autocast)
    old_layers(True)
    _assert_same(new, _step(m, tokens, targets, autocast=autocast))


def test_document_masking_is_the_old_one_bit_for_bit(old_layers):
    m = _model(2).train()
    tokens, targets = _tokens()
    segments = torch.tensor(
        [[0] * 15 + [1] * 20 + [-1] * 5, [0] * 40, [0] * 3 + [1] * 30 + [2] * 7]
    )
    new = _step(m, tokens, targets, segments)
    old_layers(True)
    _assert_same(new, _step(m, tokens, targets, segments))


def test_kv_cache_decoding_is_the_old_one_bit_for_bit(old_layers):
    m = _model(2).eval()
    tokens, _ = _tokens(2, 20)

    def decode() -> list[torch.Tensor]:
        cache, out = m.lm.new_cache(), []
        with torch.no_grad():
            out.append(m(tokens[:, :12], cache=cache)[0])  # the prompt, then a token at a time
            for i in range(12, 20):
                out.append(m(tokens[:, i : i + 1], cache=cache)[0])
        return out

    new = decode()
    old_layers(True)
    old = decode()
    assert all(torch.equal(a, b) for a, b in zip(new, old, strict=True))


def test_dynamic_vision_tower_is_the_old_one_bit_for_bit(old_layers):
    """The tower's 2-D rotary passes half tables and attends within each image (segments)."""
    m = _model(resolution="dynamic").train()
    g = torch.Generator().manual_seed(2)
    ims = [
        torch.randint(0, 256, hw + (3,), generator=g, dtype=torch.uint8)
        for hw in [(32, 48), (16, 32)]
    ]

    def run():
        m.zero_grad(set_to_none=True)
        out = m.vision(ImageBatch.from_pixels(ims, 8, 2))
        out.square().mean().backward()
        return out.detach(), {n: p.grad.clone() for n, p in m.vision.named_parameters()}

    on, gn = run()
    old_layers(True)
    oo, go = run()
    assert torch.equal(on, oo)
    assert all(torch.equal(gn[n], go[n]) for n in gn), [
        n for n in gn if not torch.equal(gn[n], go[n])
    ]


def test_rope_tables_turn_each_pair_as_the_half_tables_do():
    cos, sin = rope_cache(10, 8, 10000.0)
    fc, fs = rope_tables(cos, sin)
    assert torch.equal(fc, torch.cat([cos, cos], -1)) and torch.equal(
        fs, torch.cat([-sin, sin], -1)
    )
