"""Load a local Hugging Face SigLIP / CLIP vision tower's weights into vloom's VisionEncoder.

`model.vision.init: DIR` names a directory written by transformers' `save_pretrained`: a
SiglipVisionModel / CLIPVisionModel, or a SiglipModel / CLIPModel whose `vision_model.*` half is
taken (the text half, SigLIP's pooling head and CLIP's projection are not used). The encoder's
sizes and preprocessing come from DIR when the config is loaded (`vloom.model.tower_config`);
here the weights are mapped one to one (the block parameter names are transformers'), checked
against the encoder, and copied in. Only `*.safetensors` files are read (never pickle).

With `feature_layer` -2 (CLIP's default, as LLaVA) the last block is not built, so its weights
are skipped; `post_layernorm` is loaded only with `post_norm: true`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

from vloom.model.tower_config import tower_fields
from vloom.model.vision import SIGLIP_MLP_RATIO, TOWER_ACT, TOWER_EPS, VisionEncoder

PREFIX = "vision_model."  # how a SiglipModel / CLIPModel (and transformers 4.x towers) name it
IGNORED = ("head.", "embeddings.position_ids")  # SigLIP's attention-pooling head; a buffer


def effective_fields(enc: VisionEncoder) -> dict:
    """The encoder's tower fields with the family defaults its None fields stand for."""
    c = enc.cfg
    return {
        "arch": c.arch,
        "d_model": c.d_model,
        "n_layers": c.n_layers,
        "n_heads": c.n_heads,
        "patch_size": c.patch_size,
        "mlp_hidden": c.mlp_hidden or SIGLIP_MLP_RATIO * c.d_model,
        "norm_eps": c.norm_eps or TOWER_EPS.get(c.arch),
        "act": c.act or TOWER_ACT.get(c.arch),
        "image_mean": c.image_mean or [0.5] * 3,
        "image_std": c.image_std or [0.5] * 3,
    }


def read_tower_weights(tower_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Path]]:
    """The tower's tensors under transformers' vision-model names, and the file of each."""
    files = sorted(tower_dir.glob("*.safetensors"))
    if not files:
        bins = [p.name for p in tower_dir.glob("*.bin")]
        extra = f" ({', '.join(bins)} would need unpickling; convert it)" if bins else ""
        raise FileNotFoundError(
            f"{tower_dir}: no *.safetensors weights for model.vision.init{extra}"
        )
    sd: dict[str, torch.Tensor] = {}
    where: dict[str, Path] = {}
    for f in files:
        try:
            with safe_open(str(f), "pt") as st:
                keys = list(st.keys())
                prefixed = any(k.startswith(PREFIX) for k in keys)
                for k in keys:
                    if prefixed and not k.startswith(PREFIX):
                        continue  # the text tower, logit scale, projections
                    name = k.removeprefix(PREFIX)
                    sd[name], where[name] = st.get_tensor(k), f
        except Exception as e:
            raise ValueError(f"{f}: corrupt safetensors file ({e})") from None
    return sd, where


def name_map(enc: VisionEncoder) -> dict[str, str]:
    """vloom encoder parameter name -> transformers vision-model name."""
    names = {
        "patch_embed.weight": "embeddings.patch_embedding.weight",
        "pos_embed": "embeddings.position_embedding.weight",
    }
    if enc.patch_embed.bias is not None:
        names["patch_embed.bias"] = "embeddings.patch_embedding.bias"
    if enc.clip:
        names["cls_embed"] = "embeddings.class_embedding"
        names["pre_norm.weight"] = "pre_layrnorm.weight"
        names["pre_norm.bias"] = "pre_layrnorm.bias"
    if enc.cfg.post_norm:
        names["norm.weight"] = "post_layernorm.weight"
        names["norm.bias"] = "post_layernorm.bias"
    for k in enc.state_dict():
        if k.startswith("layers."):
            names[k] = "encoder." + k
    return names


def load_tower(enc: VisionEncoder, tower_dir: str | Path) -> None:
    """Copy the tower in `tower_dir` into `enc` (built from the config the tower resolved);
    one-line errors naming the file and the field for any mismatch."""
    tower_dir = Path(tower_dir)
    fields, size = tower_fields(tower_dir)
    mine = effective_fields(enc)
    bad = [f"{k}={mine[k]!r} (tower: {v!r})" for k, v in fields.items() if mine[k] != v]
    if bad:
        raise ValueError(
            f"{tower_dir / 'config.json'}: model.vision does not match the tower: "
            f"{', '.join(bad)} (load the config with vloom.config, which fills them in)"
        )
    if enc.image_size != size:
        raise ValueError(
            f"{tower_dir / 'config.json'}: image_size {size}, but the encoder is built for "
            f"pack.image_size={enc.image_size} (the tower's learned positions need {size})"
        )
    sd, where = read_tower_weights(tower_dir)
    names = name_map(enc)
    missing = [h for h in names.values() if h not in sd]
    if missing:
        raise ValueError(f"{tower_dir}: the tower's weights lack {missing[:3]}")
    used = set(names.values())
    n_built = len(enc.layers)
    unknown = sorted(
        k
        for k in sd
        if k not in used
        and not k.startswith(IGNORED)
        and not k.startswith("post_layernorm.")
        and not (k.startswith("encoder.layers.") and int(k.split(".")[2]) >= n_built)
    )
    if unknown:
        raise ValueError(f"{where[unknown[0]]}: weights vloom cannot place: {unknown[:3]}")
    own = enc.state_dict()
    new = {}
    for ours, theirs in names.items():
        t = sd[theirs]
        if t.shape != own[ours].shape and (ours != "pos_embed" or t.numel() != own[ours].numel()):
            raise ValueError(
                f"{where[theirs]}: {theirs} has shape {tuple(sd[theirs].shape)}, the config "
                f"implies {tuple(own[ours].shape)}"
            )
        new[ours] = t.reshape(own[ours].shape).to(own[ours].dtype)  # [N, D] -> [1, N, D]
    enc.load_state_dict(new)  # strict: every parameter of the encoder comes from the tower
