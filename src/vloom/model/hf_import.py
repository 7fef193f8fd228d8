"""Import a local Hugging Face checkpoint of the Llama / Qwen2 / SmolLM families into vloom.

The LM weights map one to one (see `hf_export.hf_name_map`); Qwen2's q/k/v biases use vloom's
`qkv_bias` flag. The vision encoder and connector have no counterpart in a text-only HF model,
so they are freshly initialised (seeded) at the imported LM's width: the result is a vloom
checkpoint to continue pre-training from (`train.init_from`), with the LM computing exactly
what the HF model computes.

Only `*.safetensors` weights are read (a `pytorch_model.bin` would need unpickling). Caveats a
user should know: vloom reserves token ids 0..3 for `<pad> <bos> <eos> <image>`, and replaces
id 3 by image embeddings, so an imported vocabulary should be paired with a tokenizer whose
first four ids are those (the HF tokenizer files are copied to `hf_tokenizer/` for reference).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from vloom.config import ModelConfig, VisionConfig
from vloom.model.hf_export import _bias_names, hf_name_map
from vloom.model.io import save_model
from vloom.model.layers import swiglu_hidden
from vloom.model.tower_config import resolve_vision
from vloom.model.vlm import VLM
from vloom.ondisk import staged_dir

SUPPORTED = ("llama", "qwen2")  # SmolLM / SmolLM2 checkpoints are model_type "llama"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


def _rope_theta(hf: dict[str, Any], path: Path) -> float:
    # transformers 4.x: rope_theta + rope_scaling; 5.x: rope_parameters {rope_type, rope_theta}
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default":
        raise ValueError(f"{path}: RoPE scaling {kind!r} is not supported (vloom uses plain RoPE)")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def model_config_from_hf(hf: dict[str, Any], path: Path, vision: VisionConfig) -> ModelConfig:
    """vloom ModelConfig for an HF config.json dict; one-line errors for what vloom cannot run."""
    mt = hf.get("model_type")
    if mt not in SUPPORTED:
        raise ValueError(
            f"{path}: model_type {mt!r} is not supported (supported: {', '.join(SUPPORTED)})"
        )
    d, heads = hf["hidden_size"], hf["num_attention_heads"]
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(
            f"{path}: hidden_act {hf['hidden_act']!r} is not supported (SwiGLU uses silu)"
        )
    if hf.get("head_dim") not in (None, d // heads) or d % heads:
        raise ValueError(
            f"{path}: head_dim {hf.get('head_dim')} != hidden_size / num_attention_heads"
        )
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ValueError(
            f"{path}: attention_bias / mlp_bias on o_proj or the MLP are not supported"
        )
    if mt == "qwen2" and hf.get("use_sliding_window"):
        raise ValueError(f"{path}: use_sliding_window=true is not supported (vloom attends fully)")
    inter = hf["intermediate_size"]
    mult = inter / d
    if swiglu_hidden(d, mult) != inter:
        raise ValueError(
            f"{path}: intermediate_size {inter} is not a multiple of 8 (vloom's MLP sizes)"
        )
    return ModelConfig(
        d_model=d,
        n_layers=hf["num_hidden_layers"],
        n_heads=heads,
        n_kv_heads=hf.get("num_key_value_heads") or heads,
        ffn_mult=mult,
        rope_theta=_rope_theta(hf, path),
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        qkv_bias=mt == "qwen2",
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        vision=vision,
    )


def read_hf_weights(hf_dir: Path) -> dict[str, torch.Tensor]:
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


def import_model(
    hf_dir: str | Path,
    max_seq_len: int | None = None,
    image_size: int = 32,
    vision: VisionConfig | None = None,
    seed: int = 0,
) -> tuple[VLM, dict[str, Any]]:
    """A vloom VLM whose LM is the HF model in `hf_dir`; returns (model, HF config dict).
    A `vision` with `init` (a SigLIP / CLIP tower) brings its sizes, image size and weights."""
    hf_dir = Path(hf_dir)
    cfg_path = hf_dir / "config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{hf_dir}: not a Hugging Face model directory (no config.json)")
    try:
        hf = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path}: not valid JSON ({e})") from None
    if vision is not None and vision.init is not None:
        fields, image_size = resolve_vision(vision.model_dump(exclude_unset=True), "vision")
        vision = VisionConfig.model_validate(fields)
    cfg = model_config_from_hf(hf, cfg_path, vision or VisionConfig())
    seq = max_seq_len or min(int(hf.get("max_position_embeddings", 2048)), 4096)
    torch.manual_seed(seed)  # the fresh vision encoder and connector
    model = VLM(cfg, hf["vocab_size"], seq, image_size)
    hf_sd = read_hf_weights(hf_dir)
    names = hf_name_map(cfg.n_layers, cfg.tie_embeddings)
    if cfg.qkv_bias:
        names |= _bias_names(cfg.n_layers)
    missing = [h for h in names.values() if h not in hf_sd]
    if missing:
        raise ValueError(f"{hf_dir}: weights lack {missing[:3]} for a {hf['model_type']} model")
    unknown = sorted(set(hf_sd) - set(names.values()) - {"lm_head.weight"})
    if unknown:
        raise ValueError(f"{hf_dir}: weights vloom cannot place: {unknown[:3]}")
    own = model.state_dict()
    new = {}
    for ours, theirs in names.items():
        t = hf_sd[theirs]
        if t.shape != own[ours].shape:
            raise ValueError(
                f"{hf_dir}: {theirs} has shape {tuple(t.shape)}, config.json implies {tuple(own[ours].shape)}"
            )
        new[ours] = t.to(torch.float32)
    model.load_state_dict(new, strict=False)
    return model.eval(), hf


def import_checkpoint(
    hf_dir: str | Path,
    out_dir: str | Path,
    max_seq_len: int | None = None,
    image_size: int = 32,
    seed: int = 0,
) -> dict[str, Any]:
    """Write a vloom checkpoint (model.safetensors + config.json) for an HF directory."""
    hf_dir = Path(hf_dir)
    model, hf = import_model(hf_dir, max_seq_len, image_size, seed=seed)
    info = {"source": str(hf_dir.resolve()), "model_type": hf["model_type"], "seed": seed}
    with staged_dir(out_dir) as tmp:
        toks = [f for f in TOKENIZER_FILES if (hf_dir / f).exists()]
        for f in toks:
            (tmp / "hf_tokenizer").mkdir(exist_ok=True)
            shutil.copy2(hf_dir / f, tmp / "hf_tokenizer" / f)
        save_model(model, tmp, {"imported_from": info})
    return info | {
        "out": str(out_dir),
        "params": model.num_params(),
        "lm_params": model.num_params("lm"),
        "hf_tokenizer": bool(toks),
    }
