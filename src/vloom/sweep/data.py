"""The data a study shares: synth -> curate -> pack once per distinct data setting.

Runs whose data settings are equal read the same packed directory, so a study of eight runs
builds its data once. The settings are derived from the config sections the data stages
read (data, synth, curate, pack and model.vision, less the fields tagged as not changing the
data: see `config.data_fields`) and the data seed, so a new field is part of the key
without anyone remembering to add it. The stages are `pipeline.prepare_data`, the same
chain as `vloom run`; a file lock makes concurrent runs (local workers, Ray tasks, SLURM
array jobs) build it once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from filelock import FileLock  # a torch dependency, so always present

from vloom.config import ExperimentConfig, data_fields
from vloom.ondisk import atomic_write_json
from vloom.pipeline import DataDirs, prepare_data

DATA_DIR = "data"
SETTINGS = "settings.json"  # what the key was made from, for humans


def data_settings(cfg: ExperimentConfig, data_seed: int | None) -> dict[str, Any]:
    """Everything the packed data depends on (worker counts and model widths do not change it).

    A `data:` section joins the key (sources, paths, options, weights, the held-out split);
    without one the key is what it always was, and without a world source `synth` leaves it.
    Input files are keyed by path, not content: changed files under the same path need a
    fresh sweep directory.
    """
    out = {
        "seed": cfg.seed if data_seed is None else data_seed,
        "synth": data_fields(cfg.synth),
        "curate": data_fields(cfg.curate),
        "pack": data_fields(cfg.pack),
        "model.vision": data_fields(cfg.model.vision),  # image preprocessing: tokens per image
    }
    if cfg.model.lm.tokenizer_dir is not None:  # pack tokenizes with that LM's tokenizer
        out["model.lm"] = data_fields(cfg.model.lm)
    if cfg.data is not None:
        out["data"] = data_fields(cfg.data)
        if cfg.data.synth is None:
            del out["synth"]
    return out


def data_key(cfg: ExperimentConfig, data_seed: int | None) -> str:
    blob = json.dumps(data_settings(cfg, data_seed), sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:10]


def data_dir(sweep_dir: Path, cfg: ExperimentConfig, data_seed: int | None) -> Path:
    return Path(sweep_dir) / DATA_DIR / data_key(cfg, data_seed)


def ensure_data(
    sweep_dir: Path, cfg: ExperimentConfig, data_seed: int | None, quiet: bool = False
) -> DataDirs:
    """Build (or find complete) the shared data of `cfg`; return its directories."""
    root = data_dir(sweep_dir, cfg, data_seed)
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".lock")):
        atomic_write_json(root / SETTINGS, data_settings(cfg, data_seed))
        return prepare_data(cfg, root, data_seed, quiet=quiet)
