"""A tiny experiment config for tests: seconds to synth, pack and train."""

from __future__ import annotations

import copy

from vloom.config import ExperimentConfig, config_from_dict

TINY: dict = {
    "name": "tiny",
    "seed": 0,
    "synth": {
        "n_interleaved": 30,
        "n_pairs": 60,
        "n_text": 40,
        "n_eval_vqa": 16,
        "n_eval_text": 8,
        "shard_size": 50,
    },
    "curate": {
        "steps": [{"name": "exact_dedup"}, {"name": "gopher_quality"}, {"name": "image_filter"}]
    },
    "pack": {"vocab_size": 320, "seq_len": 64, "tokenizer_docs": 200, "shard_sequences": 64},
    "model": {
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 2,
        "vision": {"d_model": 32, "n_layers": 1, "n_heads": 2, "patch_size": 8, "merge": 2},
    },
    "train": {
        "steps": 8,
        "batch_size": 4,
        "warmup_steps": 2,
        "checkpoint_every": 4,
        "log_every": 2,
        "threads": 1,
        "image_start_fraction": 0.25,
    },
    "eval": {"batch_size": 16},
}


def tiny_raw(**overrides) -> dict:
    from vloom.config import set_dotted

    raw = copy.deepcopy(TINY)
    for k, v in overrides.items():
        set_dotted(raw, k.replace("__", "."), v)
    return raw


def tiny_config(**overrides) -> ExperimentConfig:
    return config_from_dict(tiny_raw(**overrides))
