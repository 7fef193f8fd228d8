"""scripts/binding_budget.py: variants of a config trained side by side on one prepared world,
read back as curves and final evals (issue 16's budget measurements)."""

import json

import pytest
import yaml
from scriptmod import load_script
from tinyexp import tiny_raw

bb = load_script("scripts/binding_budget.py")


def test_runs_share_the_world_and_report_curves_and_finals(tiny_data, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_raw(**{"eval__tasks": ["vqa", "text_qa"]})))
    out = tmp_path / "out"
    args = f"--set lr --only lr6e-4,lr2e-3_b8 --scale 0.001 --examples 8 --config {cfg}"
    work = tmp_path / "work"
    summary = bb.main(
        [*args.split(), "--data", str(tiny_data["root"]), "--work", str(work), "--out", str(out)]
    )
    assert set(summary) == {"lr6e-4", "lr2e-3_b8"}
    for name, s in summary.items():
        assert s["last_step"] == 12, (name, s)  # 12,000 x 0.001
        assert 0 in s["curve"] and 12 in s["curve"], s["curve"]  # step 0 and the last
        assert all(0 <= v <= 1 for v in s["curve"][12]), s
        assert set(s["final"]) == {"vqa", "text_qa"} and "accuracy_position" in s["final"]["vqa"]
        assert (work / name / "packed").resolve() == tiny_data["packed"].resolve()
    written = json.loads((out / "summary.json").read_text())
    assert written["lr2e-3_b8"]["train"]["steps"] == 12
    assert (out / "runs.tar.gz").stat().st_size > 0


def test_a_torn_metrics_line_is_skipped(tmp_path):
    lines = [{"step": 10, "loss": 1.0}, {"step": 10, "eval/vqa/accuracy_position": 0.5}]
    (tmp_path / "metrics.jsonl").write_text(
        "\n".join(json.dumps(r) for r in lines) + '\n{"step": 20, "lo'
    )
    got = bb.read_run(tmp_path)
    assert got["last_step"] == 10 and got["curve"] == {10: [0.5, None, None, None]}
    assert "final" not in got


def test_an_unknown_run_name_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="not in set 'lr'"):
        bb.main(
            [
                "--data",
                str(tmp_path),
                "--work",
                str(tmp_path / "w"),
                "--set",
                "lr",
                "--only",
                "lr6e-4,nope",
            ]
        )
