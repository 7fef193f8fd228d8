"""The model-in-the-loop configs under configs/generated parse: curate YAMLs build their
steps with checked parameters, experiment YAMLs validate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vloom.config import load_config, load_curate_config
from vloom.curate.registry import resolve_step

ROOT = Path(__file__).resolve().parents[3] / "configs" / "generated"
NAMES = (
    "kale",
    "knowledge_units",
    "knowledge_units_questions",
    "backtranslate",
    "sft_backtranslate",
)
CONFIGS = [ROOT / f"{n}.yaml" for n in NAMES]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_generated_config_parses(path):
    if "steps" in yaml.safe_load(path.read_text()):
        for step in load_curate_config(path).steps:
            resolve_step(step)  # unknown steps or parameters are one-line errors
    else:
        load_config(path)
