"""Model weights + config on disk: `model.safetensors` and `config.json` (never pickle).

`config.json` is the checkpoint's marker: `save_model` removes it first and writes it last
(atomically), so a save killed midway leaves a directory `load_model` refuses, never new
weights under an old config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vloom.config import ModelConfig
from vloom.model.vlm import VLM
from vloom.ondisk import RUN_CONFIG, WEIGHTS, atomic_path, atomic_write_json, read_json
from vloom.sequence import TokenLayout

CONFIG = RUN_CONFIG  # a checkpoint's meta (one spelling: ondisk.RUN_CONFIG)


def model_meta(model: VLM) -> dict[str, Any]:
    return {
        "architecture": "vloom-vlm",
        "model": model.cfg.model_dump(mode="json"),
        "vocab_size": model.lm.vocab_size,
        "max_seq_len": model.lm.max_seq_len,
        "image_size": model.vision.image_size,
        "tokens_per_image": model.tokens_per_image,
        "token_layout": model.layout.to_json(),
    }


def state_dict_for_save(model: VLM) -> dict[str, torch.Tensor]:
    # Tied weights share storage; safetensors refuses shared tensors, so keep one name.
    sd = model.state_dict()
    if model.cfg.tie_embeddings:
        sd.pop("lm.lm_head.weight", None)
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors file written to a temporary sibling, fsynced and renamed over `path`."""
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def save_model(model: VLM, out_dir: str | Path, extra: dict[str, Any] | None = None) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CONFIG).unlink(missing_ok=True)  # not a checkpoint until the new config lands
    save_tensors(state_dict_for_save(model), out_dir / WEIGHTS)
    atomic_write_json(out_dir / CONFIG, model_meta(model) | (extra or {}))  # written last


def build_model(meta: dict[str, Any]) -> VLM:
    return VLM(
        ModelConfig.model_validate(meta["model"]),
        meta["vocab_size"],
        meta["max_seq_len"],
        meta["image_size"],
        pretrained=False,  # the checkpoint's weights, not model.vision.init's / lm.init's
        layout=TokenLayout.from_json(meta.get("token_layout"), f"{CONFIG}: token_layout"),
    )


def load_model(ckpt_dir: str | Path, map_location: str = "cpu") -> VLM:
    """Load a checkpoint directory; one-line errors for a missing, foreign or corrupt checkpoint."""
    ckpt_dir = Path(ckpt_dir)
    cfg_path, w_path = ckpt_dir / CONFIG, ckpt_dir / WEIGHTS
    if not cfg_path.exists() or not w_path.exists():
        raise FileNotFoundError(f"{ckpt_dir}: not a checkpoint (needs {CONFIG} and {WEIGHTS})")
    meta = read_json(cfg_path)
    if meta.get("architecture") != "vloom-vlm":
        raise ValueError(f"{cfg_path}: architecture {meta.get('architecture')!r} is not vloom-vlm")
    model = build_model(meta)
    try:
        sd = load_file(str(w_path), device=map_location)
    except Exception as e:
        raise ValueError(f"{w_path}: corrupt safetensors file ({e})") from None
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shape mismatches: a checkpoint of another architecture
        first = str(e).split("\n\t")[1] if "\n\t" in str(e) else str(e)
        raise ValueError(f"{w_path}: weights do not match {cfg_path.name}: {first}") from None
    missing = [k for k in missing if k != "lm.lm_head.weight" or not model.cfg.tie_embeddings]
    if missing or unexpected:
        raise ValueError(
            f"{w_path}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model
