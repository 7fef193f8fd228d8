"""Import a local Hugging Face checkpoint of the Llama / Qwen2 / SmolLM families into vloom.

The LM weights map one to one (see `hf_lm`). The vision encoder and connector have no
counterpart in a text-only HF model, so they are freshly initialised (seeded) at the imported
LM's width: the result is a vloom checkpoint with the LM computing exactly what the HF model
computes. When the directory has a tokenizer.json, it is prepared as pack prepares it for
`model.lm.init` (`<image>` and `<pad>` added, embeddings grown by mean rows) and written beside
the weights, and the checkpoint's model section says `lm.init: DIR`; so `model: {from: CKPT}`
with `train.init_from: CKPT` packs with that tokenizer and loads the weights without a shape
mismatch. Without one, the HF vocabulary is kept as is with vloom's default token layout
(ids 0..3 special). The HF tokenizer files are copied to `hf_tokenizer/` for reference.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from vloom.config import ModelConfig, VisionConfig
from vloom.model.hf_lm import load_hf_lm, read_hf_weights  # noqa: F401  (re-exported)
from vloom.model.io import save_model
from vloom.model.lm_config import SUPPORTED, lm_fields, read_hf_config  # noqa: F401
from vloom.model.tower_config import resolve_vision
from vloom.model.vlm import VLM
from vloom.ondisk import TOKENIZER, staged_dir
from vloom.pack.hf_tokenizer import prepare_hf_tokenizer
from vloom.sequence import DEFAULT_LAYOUT

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


def model_config_from_hf(
    hf: dict[str, Any], path: Path, vision: VisionConfig, lm_init: str | None = None
) -> ModelConfig:
    """vloom ModelConfig for an HF config.json dict; one-line errors for what vloom cannot run."""
    return ModelConfig(**lm_fields(hf, path), lm={"init": lm_init}, vision=vision)


def import_model(
    hf_dir: str | Path,
    max_seq_len: int | None = None,
    image_size: int = 32,
    vision: VisionConfig | None = None,
    seed: int = 0,
    tokenizer_out: str | Path | None = None,
) -> tuple[VLM, dict[str, Any]]:
    """A vloom VLM whose LM is the HF model in `hf_dir`; returns (model, HF config dict).
    A `vision` with `init` (a SigLIP / CLIP tower) brings its sizes, image size and weights.

    With `tokenizer_out` and a tokenizer.json in `hf_dir`, the tokenizer is prepared as pack
    prepares it for `model.lm.init` (`<image>`, `<pad>` added; written to `tokenizer_out`),
    the model's vocabulary and token layout follow it and its config says `lm.init: hf_dir`:
    data packed with `model: {from: CHECKPOINT}` then matches it, so `train.init_from` loads."""
    hf_dir = Path(hf_dir)
    hf, cfg_path = read_hf_config(hf_dir)
    if vision is not None and vision.init is not None:
        fields, image_size = resolve_vision(vision.model_dump(exclude_unset=True), "vision")
        vision = VisionConfig.model_validate(fields)
    layout, vocab, lm_init = DEFAULT_LAYOUT, hf["vocab_size"], None
    if tokenizer_out is not None and (hf_dir / TOKENIZER_FILES[0]).exists():
        _, layout, vocab = prepare_hf_tokenizer(hf_dir, tokenizer_out)
        lm_init = str(hf_dir.resolve())
    cfg = model_config_from_hf(hf, cfg_path, vision or VisionConfig(), lm_init)
    seq = max_seq_len or min(int(hf.get("max_position_embeddings", 2048)), 4096)
    torch.manual_seed(seed)  # the fresh vision encoder and connector
    model = VLM(cfg, vocab, seq, image_size, layout=layout)  # lm.init: loads the LM itself
    if lm_init is None:
        load_hf_lm(model.lm, hf_dir)
    return model.eval(), hf


def import_checkpoint(
    hf_dir: str | Path,
    out_dir: str | Path,
    max_seq_len: int | None = None,
    image_size: int = 32,
    seed: int = 0,
) -> dict[str, Any]:
    """Write a vloom checkpoint (model.safetensors + config.json) for an HF directory, with
    the tokenizer prepared for vloom (tokenizer.json, named in config.json) when it has one."""
    hf_dir = Path(hf_dir)
    tok_final = Path(out_dir).resolve() / TOKENIZER
    with staged_dir(out_dir) as tmp:
        model, hf = import_model(
            hf_dir, max_seq_len, image_size, seed=seed, tokenizer_out=tmp / TOKENIZER
        )
        info = {"source": str(hf_dir.resolve()), "model_type": hf["model_type"], "seed": seed}
        toks = [f for f in TOKENIZER_FILES if (hf_dir / f).exists()]
        for f in toks:
            (tmp / "hf_tokenizer").mkdir(exist_ok=True)
            shutil.copy2(hf_dir / f, tmp / "hf_tokenizer" / f)
        prepared = (tmp / TOKENIZER).exists()
        extra = {"imported_from": info} | ({"tokenizer": str(tok_final)} if prepared else {})
        save_model(model, tmp, extra)
    return info | {
        "out": str(out_dir),
        "params": model.num_params(),
        "lm_params": model.num_params("lm"),
        "hf_tokenizer": bool(toks),
        "tokenizer": str(tok_final) if prepared else None,
        "token_layout": model.layout.to_json(),
    }
