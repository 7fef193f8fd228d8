"""A local Hugging Face Llama / Qwen2 / SmolLM2 checkpoint's weights in vloom's LM.

The LM weights map one to one (`hf_name_map`, an explicit dict); Qwen2's q/k/v biases use
vloom's `qkv_bias` flag. The vocabulary may grow: a tokenizer that gained `<image>` (and
`<pad>`) needs rows the checkpoint lacks. As transformers' `resize_token_embeddings` (its
default mean_resizing), every new row of the embedding and of an untied lm_head is the mean of
the checkpoint's rows, so the logits on the original ids are unchanged and a new token starts
as an average one. Only `*.safetensors` weights are read (a `pytorch_model.bin` would need
unpickling).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from vloom.model.lm_config import read_hf_config

VOCAB_ROWS = ("embed_tokens.weight", "lm_head.weight")  # [vocab, d] tensors that may grow


def hf_name_map(n_layers: int, tied: bool) -> dict[str, str]:
    """vloom LM parameter name -> transformers Llama/Qwen2 parameter name."""
    names = {
        "lm.embed_tokens.weight": "model.embed_tokens.weight",
        "lm.norm.weight": "model.norm.weight",
    }
    if not tied:
        names["lm.lm_head.weight"] = "lm_head.weight"
    for i in range(n_layers):
        for sub in (
            "input_layernorm.weight",
            "post_attention_layernorm.weight",
            "self_attn.q_proj.weight",
            "self_attn.k_proj.weight",
            "self_attn.v_proj.weight",
            "self_attn.o_proj.weight",
            "mlp.gate_proj.weight",
            "mlp.up_proj.weight",
            "mlp.down_proj.weight",
        ):
            names[f"lm.layers.{i}.{sub}"] = f"model.layers.{i}.{sub}"
    return names


def bias_names(n_layers: int) -> dict[str, str]:
    """Qwen2's q/k/v biases, vloom name -> transformers name."""
    return {
        f"lm.layers.{i}.self_attn.{p}_proj.bias": f"model.layers.{i}.self_attn.{p}_proj.bias"
        for i in range(n_layers)
        for p in "qkv"
    }


def read_hf_weights(hf_dir: str | Path) -> dict[str, torch.Tensor]:
    hf_dir = Path(hf_dir)
    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        bins = [p.name for p in hf_dir.glob("*.bin")]
        extra = (
            f" ({', '.join(bins)} would need unpickling; convert to safetensors)" if bins else ""
        )
        raise FileNotFoundError(f"{hf_dir}: no *.safetensors weights{extra}")
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            sd.update(load_file(str(f)))
        except Exception as e:
            raise ValueError(f"{f}: corrupt safetensors file ({e})") from None
    if "embed_tokens.weight" in sd:  # a bare LlamaModel/Qwen2Model: no "model." prefix
        sd = {k if k == "lm_head.weight" else f"model.{k}": v for k, v in sd.items()}
    return {k: v for k, v in sd.items() if not k.endswith("rotary_emb.inv_freq")}


def lm_state_dict(lm: nn.Module, hf_dir: str | Path) -> dict[str, torch.Tensor]:
    """The HF checkpoint's LM weights under `lm`'s own parameter names, the vocabulary rows
    grown (mean of the old rows) to `lm.vocab_size`; one-line errors naming the directory."""
    hf_dir = Path(hf_dir)
    hf, cfg_path = read_hf_config(hf_dir)
    cfg = lm.cfg
    hf_sd = read_hf_weights(hf_dir)
    names = hf_name_map(cfg.n_layers, cfg.tie_embeddings)
    if cfg.qkv_bias:
        names |= bias_names(cfg.n_layers)
    missing = [h for h in names.values() if h not in hf_sd]
    if missing:
        raise ValueError(f"{hf_dir}: weights lack {missing[:3]} for a {hf['model_type']} model")
    unknown = sorted(set(hf_sd) - set(names.values()) - {"lm_head.weight"})
    if unknown:
        raise ValueError(f"{hf_dir}: weights vloom cannot place: {unknown[:3]}")
    own = lm.state_dict()
    out = {}
    for ours, theirs in names.items():
        key = ours.removeprefix("lm.")
        t, want = hf_sd[theirs].to(torch.float32), own[key].shape
        rows = hf.get("vocab_size", t.shape[0])
        if key in VOCAB_ROWS and t.shape[1:] == want[1:] and t.shape[0] == rows <= want[0]:
            grown = t.mean(0, keepdim=True).expand(want[0] - rows, -1)
            t = torch.cat([t, grown])  # new tokens' rows: the mean of the old ones
        if t.shape != want:
            raise ValueError(
                f"{hf_dir}: {theirs} has shape {tuple(hf_sd[theirs].shape)}, "
                f"{cfg_path.name} implies {tuple(want)}"
            )
        out[key] = t
    return out


@torch.no_grad()
def load_hf_lm(lm: nn.Module, hf_dir: str | Path) -> None:
    """Copy the HF checkpoint in `hf_dir` into vloom's LanguageModel `lm` (see lm_state_dict)."""
    lm.load_state_dict(lm_state_dict(lm, hf_dir), strict=False)
