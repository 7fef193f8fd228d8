"""Tiny study files for the sweep tests (module name unique across tests/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from tinyexp import tiny_raw


def write_study(tmp: Path, name: str = "study.yaml", **fields: Any) -> Path:
    """A study over the tiny experiment; `fields` override the study's own keys."""
    study: dict[str, Any] = {
        "name": "tiny-study",
        "out_dir": str(tmp / "sweep"),
        "base": tiny_raw(),
        "grid": {"train.image_start_fraction": [0.0, 1.0]},
        "seeds": [0, 1],
        "tokens": 2048,  # 8 steps of 4 x 64 tokens
        "finetune": {"steps": 4, "warmup_steps": 1},
        "threads": 1,
    }
    study.update(fields)
    path = tmp / name
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path
