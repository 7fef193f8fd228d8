"""What a local Hugging Face Llama / Qwen2 / SmolLM2 directory says about its LM, as `model`
fields (stdlib only: config loading reads it before torch).

`model.lm.init: DIR` takes d_model, depth, heads, MLP width, RoPE theta, norm eps, q/k/v biases
and tied embeddings from DIR/config.json. A `model` field the user set that contradicts the
checkpoint is a one-line error naming the fields; fields left out are filled in. The weights
are loaded by `vloom.model.hf_lm` when the model is built, the tokenizer by pack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vloom.ondisk import read_json_object

SUPPORTED = ("llama", "qwen2")  # SmolLM / SmolLM2 checkpoints are model_type "llama"
# model fields an HF LM fixes (compared with what the user wrote)
LM_FIELDS = (
    "d_model",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "ffn_mult",
    "rope_theta",
    "norm_eps",
    "qkv_bias",
    "tie_embeddings",
)


def read_hf_config(hf_dir: str | Path) -> tuple[dict[str, Any], Path]:
    """(config.json as a dict, its path); one-line errors for a missing or broken file."""
    path = Path(hf_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{hf_dir}: not a Hugging Face model directory (no config.json)")
    return read_json_object(path), path


def _rope_theta(hf: dict[str, Any], path: Path) -> float:
    # transformers 4.x: rope_theta + rope_scaling; 5.x: rope_parameters {rope_type, rope_theta}
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default":
        raise ValueError(f"{path}: RoPE scaling {kind!r} is not supported (vloom uses plain RoPE)")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def lm_fields(hf: dict[str, Any], path: Path) -> dict[str, Any]:
    """The `model` LM fields of an HF config.json dict; one-line errors for what vloom cannot
    run, naming the file and the field."""
    mt = hf.get("model_type")
    if mt not in SUPPORTED:
        raise ValueError(
            f"{path}: model_type {mt!r} is not supported (supported: {', '.join(SUPPORTED)})"
        )
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        if not isinstance(hf.get(key), int) or hf[key] < 1:
            raise ValueError(f"{path}: {key} is missing or not a positive integer")
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
    if inter % 8:  # vloom's MLP width is ffn_mult * d_model rounded to a multiple of 8
        raise ValueError(
            f"{path}: intermediate_size {inter} is not a multiple of 8 (vloom's MLP sizes)"
        )
    return {
        "d_model": d,
        "n_layers": hf["num_hidden_layers"],
        "n_heads": heads,
        "n_kv_heads": hf.get("num_key_value_heads") or heads,
        "ffn_mult": inter / d,
        "rope_theta": _rope_theta(hf, path),
        "norm_eps": float(hf.get("rms_norm_eps", 1e-6)),
        "qkv_bias": mt == "qwen2",
        "tie_embeddings": bool(hf.get("tie_word_embeddings", False)),
    }


def resolve_lm(raw: dict[str, Any], source: str = "<config>") -> dict[str, Any]:
    """A raw experiment config dict with `model.lm.init`'s LM fields filled in (a copy; `raw`
    itself when there is no init, or when the directory is not on this machine: the config
    still parses, and `vloom.config.check_model_dirs` stops the run). Malformed sections are
    left to validation."""
    model = raw.get("model")
    lm = model.get("lm") if isinstance(model, dict) else None
    if not isinstance(lm, dict) or not isinstance(lm.get("init"), str):
        return raw
    if not Path(lm["init"]).exists():  # another machine's weights: the run start names it
        return raw
    hf, path = read_hf_config(lm["init"])
    fields = lm_fields(hf, path)
    bad = [
        f"model.{k}={model[k]!r} ({path}: {v!r})"
        for k, v in fields.items()
        if model.get(k) is not None and model[k] != v
    ]
    if bad:
        raise ValueError(
            f"{source}: model contradicts the LM model.lm.init={lm['init']}: {', '.join(bad)}; "
            "leave these fields out"
        )
    return raw | {"model": model | fields}
