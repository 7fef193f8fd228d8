"""Import a local Hugging Face checkpoint of the Llama / Qwen2 / SmolLM families into vloom.

The LM weights map one to one (see `hf_lm`). The vision encoder and connector have no
counterpart in a text-only HF model, so they are freshly initialised (seeded) at the imported
LM's width: the result is a vloom checkpoint with the LM computing exactly what the HF model
computes, and the HF tokenizer files copied to `hf_tokenizer/` for reference.

To train from a pretrained LM, `model.lm.init: DIR` in the experiment config is the direct
path: pack then tokenizes with DIR's own tokenizer (plus `<image>`), and the model starts
from DIR's weights with its embeddings grown to match. A checkpoint imported here keeps the
HF vocabulary and its ids, so `train.init_from` it only with data packed by that tokenizer.
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
from vloom.ondisk import staged_dir

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


def model_config_from_hf(hf: dict[str, Any], path: Path, vision: VisionConfig) -> ModelConfig:
    """vloom ModelConfig for an HF config.json dict; one-line errors for what vloom cannot run."""
    return ModelConfig(**lm_fields(hf, path), vision=vision)


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
    hf, cfg_path = read_hf_config(hf_dir)
    if vision is not None and vision.init is not None:
        fields, image_size = resolve_vision(vision.model_dump(exclude_unset=True), "vision")
        vision = VisionConfig.model_validate(fields)
    cfg = model_config_from_hf(hf, cfg_path, vision or VisionConfig())
    seq = max_seq_len or min(int(hf.get("max_position_embeddings", 2048)), 4096)
    torch.manual_seed(seed)  # the fresh vision encoder and connector
    model = VLM(cfg, hf["vocab_size"], seq, image_size)
    load_hf_lm(model.lm, hf_dir)
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
