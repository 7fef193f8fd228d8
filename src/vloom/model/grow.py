"""HyperCloning (Samragh et al. 2024): widen a trained model by an integer factor n so that the
wide model computes the same function, to start pre-training a larger model from a smaller one.

Every hidden vector of the wide model is the small model's vector repeated n times:
- a linear layer whose input is replicated is tiled n x n and divided by n on the input side,
  so each output copy is W x exactly;
- RMSNorm: the RMS of [x, x] is the RMS of x, so the weight is simply tiled;
- attention: heads are replicated (n_heads x n, n_kv_heads x n, same head_dim), so RoPE and
  the grouped-query head mapping are unchanged; scores and outputs per head are identical;
- SwiGLU: gate/up rows tile, down tiles with 1/n on its input side.

Tied embeddings need one more step: the output layer must be (1/n)[E ... E] while the
embedding would be [E ... E]. Keeping the tie, the whole residual stream is carried at scale
a = 1/n: embeddings, connector outputs and the residual-writing projections (o_proj, down_proj)
are multiplied by a, and the LM's RMSNorm epsilon by a^2, which every RMSNorm cancels exactly
(rsqrt(mean((a x)^2) + a^2 eps) = rsqrt(mean(x^2) + eps) / a). Untied models keep a = 1.

Symmetry-breaking noise (the paper's variant that keeps the function): on layers whose input is
replicated, each output row gets noise on its n input copies that sums to zero across copies, so
(W + e1) x + (W + e2) x = 2 W x in exact arithmetic while the copies start to differ.

The vision encoder is left as it is by default (only the connector's output widens to the new
LM width); with grow_vision=True it is widened by the same rules (a = 1: it has no ties).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from vloom.config import ModelConfig
from vloom.model.io import CONFIG, load_model, save_model
from vloom.model.layers import swiglu_hidden
from vloom.model.vlm import VLM
from vloom.ondisk import staged_dir

MODEL_YAML = "model.yaml"


def parse_factor(value: Any) -> int:
    """An integer growth factor >= 1 from a CLI/config value; one-line error otherwise."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"width factor {value!r} is not a number") from None
    if not math.isfinite(f) or f != int(f):
        raise ValueError(
            f"width factor {value} is not an integer (HyperCloning replicates whole copies)"
        )
    if f < 1:
        raise ValueError(f"width factor {value} must be >= 1")
    return int(f)


class _Widener:
    """Tiles tensors for one growth; holds the factor, noise and its RNG."""

    def __init__(self, n: int, noise: float, seed: int) -> None:
        self.n, self.noise = n, noise
        self.gen = torch.Generator().manual_seed(seed)

    def rows(self, t: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Replicate the output (first) dimension: [out, ...] -> [n*out, ...]."""
        return torch.cat([t] * self.n, dim=0) * scale

    def last(self, t: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Replicate the last dimension (embeddings, norm weights, position/slot embeddings)."""
        return torch.cat([t] * self.n, dim=-1) * scale

    def linear(
        self, w: torch.Tensor, n_out: int, n_in: int, groups: int = 1, scale: float = 1.0
    ) -> torch.Tensor:
        """[out, in] -> [n_out*out, groups*n_in*(in/groups)].

        The input is `groups` blocks each replicated n_in times (groups > 1 for merged vision
        patches); input copies are divided by n_in and get zero-sum noise across copies.
        """
        out, inp = w.shape
        d = inp // groups
        wf = w.float().reshape(out, groups, 1, d).expand(out, groups, n_in, d) / n_in * scale
        wf = wf.unsqueeze(0).expand(n_out, out, groups, n_in, d)
        if self.noise > 0 and n_in > 1:
            eta = torch.randn(wf.shape, generator=self.gen) * self.noise
            # Centre across the input copies (sum zero), rescaled so the std is `noise`.
            eta = (eta - eta.mean(dim=3, keepdim=True)) * math.sqrt(n_in / (n_in - 1))
            wf = wf + eta
        return wf.reshape(n_out * out, groups * n_in * d).to(w.dtype)


Rule = Callable[[_Widener, torch.Tensor], torch.Tensor]


def _rules(a: float, vision: bool, merge_groups: int) -> list[tuple[str, Rule]]:
    """Explicit name -> widening rule table; `a` is the LM residual scale (1/n when tied)."""

    def block(prefix: str, res: float) -> list[tuple[str, Rule]]:
        return [
            (
                rf"{prefix}\.layers\.\d+\.(input|post_attention)_layernorm\.weight",
                lambda g, t: g.last(t),
            ),
            (
                rf"{prefix}\.layers\.\d+\.self_attn\.[qkv]_proj\.weight",
                lambda g, t: g.linear(t, g.n, g.n),
            ),
            (rf"{prefix}\.layers\.\d+\.self_attn\.[qkv]_proj\.bias", lambda g, t: g.rows(t)),
            (
                rf"{prefix}\.layers\.\d+\.self_attn\.o_proj\.weight",
                lambda g, t: g.linear(t, g.n, g.n, scale=res),
            ),
            (
                rf"{prefix}\.layers\.\d+\.mlp\.(gate|up)_proj\.weight",
                lambda g, t: g.linear(t, g.n, g.n),
            ),
            (
                rf"{prefix}\.layers\.\d+\.mlp\.down_proj\.weight",
                lambda g, t: g.linear(t, g.n, g.n, scale=res),
            ),
            (rf"{prefix}\.norm\.weight", lambda g, t: g.last(t)),
        ]

    rules = block("lm", a) + [
        (r"lm\.embed_tokens\.weight", lambda g, t: g.last(t, a)),
        (r"lm\.lm_head\.weight", lambda g, t: g.linear(t, 1, g.n)),
        (r"connector\.fc2\.weight", lambda g, t: g.linear(t, g.n, g.n, scale=a)),
        (r"connector\.fc2\.bias", lambda g, t: g.rows(t, a)),
        (r"connector\.fc1\.bias", lambda g, t: g.rows(t)),
        (r"connector\.slot_embed", lambda g, t: g.last(t, a)),
    ]
    if vision:
        rules += block("vision", 1.0) + [
            (r"vision\.patch_embed\.(weight|bias)", lambda g, t: g.rows(t)),
            (r"vision\.pos_embed", lambda g, t: g.last(t)),
            (r"connector\.fc1\.weight", lambda g, t: g.linear(t, g.n, g.n, groups=merge_groups)),
        ]
    else:
        rules += [
            (r"vision\..*", lambda g, t: t),
            (r"connector\.fc1\.weight", lambda g, t: g.linear(t, g.n, 1)),
        ]
    return rules


def grown_config(cfg: ModelConfig, n: int, grow_vision: bool) -> ModelConfig:
    """The config of the model `cfg` widened n times."""
    a = 1.0 / n if cfg.tie_embeddings else 1.0
    hidden = swiglu_hidden(cfg.d_model, cfg.ffn_mult)
    new = cfg.model_dump()
    new.update(
        d_model=cfg.d_model * n,
        n_heads=cfg.n_heads * n,
        n_kv_heads=cfg.n_kv_heads * n if cfg.n_kv_heads else None,
        # hidden / d_model reproduces n * hidden exactly at the new width (hidden is a multiple of 8)
        ffn_mult=hidden / cfg.d_model,
        norm_eps=cfg.norm_eps * a * a,
        # a pretrained LM's sizes no longer hold; its tokenizer (the vocabulary) still does
        lm={"init": None, "tokenizer": cfg.lm.tokenizer_dir},
    )
    if grow_vision:
        new["vision"] = cfg.vision.model_dump() | {
            "d_model": cfg.vision.d_model * n,
            "n_heads": cfg.vision.n_heads * n,
        }
    out = ModelConfig.model_validate(new)
    if swiglu_hidden(out.d_model, out.ffn_mult) != n * hidden:
        raise ValueError(f"cannot grow: the LM MLP width {hidden} does not scale to {n * hidden}")
    if grow_vision and swiglu_hidden(out.vision.d_model, 4.0) != n * swiglu_hidden(
        cfg.vision.d_model, 4.0
    ):
        raise ValueError(
            f"cannot grow the vision encoder: its MLP width for d_model={cfg.vision.d_model} "
            f"does not scale by {n} (use an even vision d_model or leave --grow-vision off)"
        )
    return out


def grow_model(
    model: VLM, factor: int, noise: float = 0.0, seed: int = 0, grow_vision: bool = False
) -> VLM:
    """A new VLM `factor` times wider computing the same function (exactly, in exact arithmetic)."""
    n = parse_factor(factor)
    if noise < 0:
        raise ValueError(f"noise std {noise} must be >= 0")
    cfg = model.cfg
    new_cfg = grown_config(cfg, n, grow_vision)
    a = 1.0 / n if cfg.tie_embeddings else 1.0
    rules = [(re.compile(p), fn) for p, fn in _rules(a, grow_vision, cfg.vision.merge**2)]
    w = _Widener(n, noise, seed)
    sd = model.state_dict()
    if cfg.tie_embeddings:
        sd.pop("lm.lm_head.weight", None)  # the tie is restored by the new model itself
    new_sd: dict[str, torch.Tensor] = {}
    for name in sorted(sd):  # sorted: the noise depends only on the seed
        fn = next((f for p, f in rules if p.fullmatch(name)), None)
        if fn is None:
            raise ValueError(f"cannot grow: no HyperCloning rule for parameter {name!r}")
        new_sd[name] = fn(w, sd[name].detach())
    big = VLM(
        new_cfg,
        model.lm.vocab_size,
        model.lm.max_seq_len,
        model.vision.image_size,
        pretrained=False,  # every weight is the small model's, grown
        layout=model.layout,
    )
    big.to(next(model.parameters()).dtype)
    missing, unexpected = big.load_state_dict(new_sd, strict=False)
    missing = [k for k in missing if not (k == "lm.lm_head.weight" and new_cfg.tie_embeddings)]
    if missing or unexpected:
        raise ValueError(
            f"cannot grow: grown weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return big.train(model.training)


def grow_checkpoint(
    src: str | Path,
    out: str | Path,
    factor: Any,
    noise: float = 0.0,
    seed: int = 0,
    grow_vision: bool = False,
) -> dict[str, Any]:
    """Grow a checkpoint directory into `out` (written to a temporary directory, then renamed)."""
    n = parse_factor(factor)
    src = Path(src)
    model = load_model(src)
    meta = json.loads((src / CONFIG).read_text())
    known = {"architecture", "model", "vocab_size", "max_seq_len", "image_size", "tokens_per_image"}
    extra = {k: v for k, v in meta.items() if k not in known}  # e.g. the tokenizer path
    big = grow_model(model, n, noise, seed, grow_vision)
    info = {
        "source": str(src.resolve()),
        "factor": n,
        "noise": noise,
        "seed": seed,
        "grow_vision": grow_vision,
    }
    model_section = big.cfg.model_dump(mode="json")
    with staged_dir(out) as tmp:
        save_model(big, tmp, extra | {"grown_from": info})
        # `model: {from: DIR}` reads the architecture from config.json; model.yaml is the same
        # section to paste (for `train.init_from: DIR`, or to start from scratch at this shape).
        (tmp / MODEL_YAML).write_text(
            "# the `model:` section of this checkpoint (`model: {from: DIR}` reads config.json)\n"
            + yaml.safe_dump({"model": model_section}, sort_keys=False)
        )
    return info | {
        "model": model_section,
        "out": str(out),
        "params_before": model.num_params(),
        "params_after": big.num_params(),
        "d_model": big.cfg.d_model,
    }
