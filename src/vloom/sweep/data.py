"""The data a study shares: synth -> curate -> pack once per distinct data setting.

Runs whose data settings are equal (the synthetic world, the curation steps, the packing and
the image tokenisation, and the data seed) read the same packed directory, so a study of
eight runs builds its data once. Each stage leaves the same completion marker as `vloom run`;
a file lock makes concurrent runs (local workers, Ray tasks, SLURM array jobs) build it once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from filelock import FileLock  # a torch dependency, so always present

from vloom.config import ExperimentConfig
from vloom.curate import run_curate
from vloom.ledger import LEDGER_FILE
from vloom.pack import STATS_FILE, run_pack
from vloom.synth import MANIFEST, generate

DATA_DIR = "data"


def data_settings(cfg: ExperimentConfig, data_seed: int | None) -> dict[str, Any]:
    """Everything the packed data depends on (worker counts and executors do not change it)."""
    return {
        "seed": cfg.seed if data_seed is None else data_seed,
        "synth": cfg.synth.model_dump(mode="json"),
        "curate": [s.model_dump(mode="json") for s in cfg.curate.steps],
        "pack": cfg.pack.model_dump(mode="json"),
        "image_tokens": [cfg.model.vision.patch_size, cfg.model.vision.merge],
    }


def data_key(cfg: ExperimentConfig, data_seed: int | None) -> str:
    blob = json.dumps(data_settings(cfg, data_seed), sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:10]


def data_dir(sweep_dir: Path, cfg: ExperimentConfig, data_seed: int | None) -> Path:
    return Path(sweep_dir) / DATA_DIR / data_key(cfg, data_seed)


def ensure_data(
    sweep_dir: Path, cfg: ExperimentConfig, data_seed: int | None, quiet: bool = False
) -> Path:
    """Build (or find complete) the shared data of `cfg`; return its directory."""
    root = data_dir(sweep_dir, cfg, data_seed)
    root.mkdir(parents=True, exist_ok=True)
    synth, curated, packed = root / "synth", root / "curated", root / "packed"
    with FileLock(str(root / ".lock")):
        if (packed / STATS_FILE).exists():
            return root
        (root / "settings.json").write_text(
            json.dumps(data_settings(cfg, data_seed), indent=2) + "\n"
        )
        seed = cfg.seed if data_seed is None else data_seed
        if not (synth / MANIFEST).exists():
            generate(cfg.synth, synth, seed, quiet=quiet)
        if not (curated / LEDGER_FILE).exists():
            run_curate(synth / "train", curated, cfg.curate, quiet=quiet)
        run_pack(curated, packed, cfg, quiet=quiet)
    return root
