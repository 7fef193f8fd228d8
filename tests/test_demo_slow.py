"""The full demo (minutes on 2 cores): what README's `make demo` promises, with its targets."""

import json
from pathlib import Path

import pytest

from vloom.config import load_config
from vloom.pipeline import run_experiment

ROOT = Path(__file__).resolve().parents[1]
TYPES = ("colour", "count", "position", "shape")
PICTURE_ONLY = ("colour", "position", "shape")  # count has a prior a text model can learn


def _pooled(res: dict, types: tuple[str, ...]) -> float:
    """Accuracy over the questions of `types` (the eval set holds equal numbers of each)."""
    return sum(res[f"accuracy_{t}"] for t in types) / len(types)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    reason="issue 16 bounds not reached: binding stays at chance at this budget (last full "
    "runs: VQA position 0.29 / shape 0.20, text_qa position 0.28 / shape 0.40; with the "
    "world's text keyed by colour VQA position 0.22 / shape 0.19, text_qa 0.22 / 0.22)",
)
def test_demo_vlm_reads_images_and_the_control_does_not(tmp_path):
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    run = run_experiment(cfg, tmp_path / "demo", quiet=True)
    res = json.loads((run / "results.json").read_text())
    ctl = json.loads((run / "control" / "results.json").read_text())
    vqa, ctl_vqa, tqa = res["eval"]["vqa"], ctl["eval"]["vqa"], res["eval"]["text_qa"]
    # Issue 16's bounds. Chance is 0.25 on every type. Position and shape name the object
    # by its colour: the model must bind attributes to objects, in the picture and in words.
    for t in TYPES:
        assert vqa[f"accuracy_{t}"] >= 0.80, (t, vqa)
        assert tqa[f"accuracy_{t}"] >= 0.80, (t, tqa)
    # The control never saw an image: on what only the picture tells it stays near chance.
    assert _pooled(ctl_vqa, PICTURE_ONLY) <= 0.35, ctl_vqa
    assert ctl["train"]["tokens"] == res["train"]["tokens"]
    report = (run / "report.md").read_text()
    assert "control" in report and (run / "plots" / "loss.png").stat().st_size > 5000
