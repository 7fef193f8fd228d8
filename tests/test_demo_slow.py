"""The full demo (minutes on 2 cores): what README's `make demo` promises, with its targets."""

import json
from pathlib import Path

import pytest

from vloom.config import load_config
from vloom.pipeline import run_experiment

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_vlm_reads_images_and_the_control_does_not(tmp_path):
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    run = run_experiment(cfg, tmp_path / "demo", quiet=True)
    res = json.loads((run / "results.json").read_text())
    ctl = json.loads((run / "control" / "results.json").read_text())
    assert res["eval"]["vqa"]["accuracy"] >= 0.60, res["eval"]["vqa"]
    assert ctl["eval"]["vqa"]["accuracy"] <= 0.40, ctl["eval"]["vqa"]  # near chance (0.25)
    assert ctl["train"]["tokens"] == res["train"]["tokens"]
    report = (run / "report.md").read_text()
    assert "control" in report and (run / "plots" / "loss.png").stat().st_size > 5000
