"""Shared fixtures: a tiny experiment whose data is made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from tinyexp import tiny_config


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """synth -> curate -> pack for the tiny config, once per session (read-only for tests)."""
    from vloom.curate import run_curate
    from vloom.pack import run_pack
    from vloom.synth import generate

    root = tmp_path_factory.mktemp("tiny")
    cfg = tiny_config()
    generate(cfg.synth, root / "synth", cfg.seed)
    run_curate(root / "synth" / "train", root / "curated", cfg.curate, quiet=True)
    run_pack(root / "curated", root / "packed", cfg, quiet=True)
    return {
        "root": root,
        "synth": root / "synth",
        "curated": root / "curated",
        "packed": root / "packed",
        "eval": root / "synth" / "eval",
    }
