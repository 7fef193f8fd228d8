"""What a local Hugging Face SigLIP / CLIP vision tower directory says about its shape and
preprocessing, as `model.vision` fields (stdlib only: config loading reads it before torch).

`model.vision.init: DIR` takes the architecture sizes, the MLP width, LayerNorm eps, activation
and the pixel mean/std from DIR, and `pack.image_size` from the tower's image_size (its learned
position table is that size). A `model.vision` / `pack` field the user set that contradicts the
tower is a one-line error naming the fields; fields left out are filled in. The weights are
loaded by `vloom.model.hf_vision` when the model is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vloom.ondisk import read_json_object

# model_type of config.json -> family (a *Model's config nests the tower as vision_config)
FAMILIES = {
    "siglip": "siglip",
    "siglip_vision_model": "siglip",
    "clip": "clip",
    "clip_vision_model": "clip",
}
ACTS = {"gelu_pytorch_tanh": "gelu_tanh", "quick_gelu": "quick_gelu", "gelu": "gelu"}
# transformers' defaults for fields a config.json may leave out
HF_DEFAULTS = {
    "siglip": {"layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh"},
    "clip": {"layer_norm_eps": 1e-5, "hidden_act": "quick_gelu"},
}
# the families' preprocessing when the directory has no preprocessor_config.json
MEAN_STD = {
    "siglip": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    "clip": ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]),
}
PREPROCESSOR = "preprocessor_config.json"
# vision fields a tower fixes (compared with what the user wrote)
TOWER_FIELDS = (
    "arch",
    "d_model",
    "n_layers",
    "n_heads",
    "patch_size",
    "mlp_hidden",
    "norm_eps",
    "act",
    "image_mean",
    "image_std",
)


def read_tower(tower_dir: str | Path) -> tuple[str, dict[str, Any]]:
    """(family, the tower's config dict) of a SigLIP / CLIP directory; one-line errors naming
    the file and the field for anything else."""
    path = Path(tower_dir) / "config.json"
    hf = read_json_object(path, "model.vision.init needs a Hugging Face model directory")
    mt = hf.get("model_type")
    if mt not in FAMILIES:
        raise ValueError(
            f"{path}: model_type {mt!r} is not a vision tower vloom loads "
            f"(supported: {', '.join(FAMILIES)})"
        )
    family = FAMILIES[mt]
    vc = hf.get("vision_config", hf) if mt in ("siglip", "clip") else hf
    if not isinstance(vc, dict):
        raise ValueError(f"{path}: vision_config is not an object")
    vc = HF_DEFAULTS[family] | vc
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size"):
        if not isinstance(vc.get(key), int) or vc[key] < 1:
            raise ValueError(f"{path}: {key} is missing or not a positive integer")
    if not isinstance(vc.get("image_size"), int):
        raise ValueError(f"{path}: image_size is missing or not an integer")
    if vc["image_size"] % vc["patch_size"]:
        raise ValueError(
            f"{path}: image_size {vc['image_size']} is not a multiple of patch_size "
            f"{vc['patch_size']}"
        )
    if vc["hidden_size"] % vc["num_attention_heads"]:
        raise ValueError(f"{path}: hidden_size is not a multiple of num_attention_heads")
    if vc["hidden_act"] not in ACTS:
        raise ValueError(
            f"{path}: hidden_act {vc['hidden_act']!r} is not supported ({', '.join(ACTS)})"
        )
    if vc.get("num_channels", 3) != 3:
        raise ValueError(f"{path}: num_channels {vc['num_channels']} (vloom feeds RGB)")
    return family, vc


def mean_std(tower_dir: str | Path, family: str) -> tuple[list[float], list[float]]:
    """image_mean / image_std from preprocessor_config.json, else the family's defaults."""
    path = Path(tower_dir) / PREPROCESSOR
    if not path.exists():
        return MEAN_STD[family]
    pre = read_json_object(path)
    out = []
    for key, default in zip(("image_mean", "image_std"), MEAN_STD[family], strict=True):
        v = pre.get(key, default)
        if isinstance(v, int | float):
            v = [v] * 3
        if not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, int | float) for x in v)):
            raise ValueError(f"{path}: {key} is not three numbers")
        out.append([float(x) for x in v])
    return out[0], out[1]


def tower_fields(tower_dir: str | Path) -> tuple[dict[str, Any], int]:
    """(model.vision fields the tower fixes, its image_size)."""
    family, vc = read_tower(tower_dir)
    mean, std = mean_std(tower_dir, family)
    fields = {
        "arch": family,
        "d_model": vc["hidden_size"],
        "n_layers": vc["num_hidden_layers"],
        "n_heads": vc["num_attention_heads"],
        "patch_size": vc["patch_size"],
        "mlp_hidden": vc.get("intermediate_size", 4 * vc["hidden_size"]),
        "norm_eps": float(vc["layer_norm_eps"]),
        "act": ACTS[vc["hidden_act"]],
        "image_mean": mean,
        "image_std": std,
    }
    return fields, vc["image_size"]


def contradictions(given: dict[str, Any], fields: dict[str, Any]) -> list[str]:
    """`name=given (tower: value)` for each given field that differs from the tower's."""
    return [
        f"{k}={given[k]!r} (tower: {v!r})"
        for k, v in fields.items()
        if k in given and given[k] is not None and given[k] != v
    ]


def resolve_vision(vision: dict[str, Any], source: str = "<config>") -> tuple[dict, int]:
    """(a `model.vision` dict with `init`'s tower fields filled in, the tower's image_size)."""
    tower = vision["init"]
    fields, size = tower_fields(tower)
    bad = contradictions(vision, fields)
    if bad:
        raise ValueError(
            f"{source}: model.vision contradicts the tower model.vision.init={tower}: "
            f"{', '.join(bad)}; leave these fields out"
        )
    return fields | {k: v for k, v in vision.items() if v is not None}, size


def resolve_raw(raw: dict[str, Any], source: str = "<config>") -> dict[str, Any]:
    """A raw experiment config dict with `model.vision.init` filled in from the tower (a copy;
    `raw` itself when there is no tower, or when its directory is not on this machine: the
    config still parses, and `vloom.config.check_model_dirs` stops the run). Malformed sections
    are left to validation."""
    model = raw.get("model")
    vision = model.get("vision") if isinstance(model, dict) else None
    if not isinstance(vision, dict) or not isinstance(vision.get("init"), str):
        return raw
    if not Path(vision["init"]).exists():  # another machine's tower: the run start names it
        return raw
    vision, size = resolve_vision(vision, source)
    pack = raw.get("pack") if isinstance(raw.get("pack"), dict) else {}
    if pack.get("image_size", size) != size:
        raise ValueError(
            f"{source}: pack.image_size={pack['image_size']} but the tower "
            f"model.vision.init={vision['init']} has image_size {size} (its learned "
            "positions); leave pack.image_size out"
        )
    return raw | {"model": model | {"vision": vision}, "pack": pack | {"image_size": size}}
