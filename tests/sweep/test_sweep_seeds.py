"""`seeds: auto`: the sweep adds seeds 0, 1, 2, ... until each compared difference separates,
is narrower than the target, stops shrinking, or the budget is spent; `--plan-seeds` prints
the decision and its evidence. Judged on per-seed results files written here (the study
report's reader reads them as it reads a real sweep's), and on one tiny real sweep."""

from __future__ import annotations

import json

import pytest
from sweepkit import write_study

from vloom.config import ConfigError
from vloom.ondisk import atomic_write_json
from vloom.sweep import load_study, run_sweep
from vloom.sweep.run import plan_seeds, write_study_json
from vloom.sweep.seeds import NARROW, OPEN, SEPARATED, STALLED
from vloom.sweep.spec import expand

PLAN = {"metrics": ["vqa.accuracy"], "start": 3, "budget": 5, "target_width": 0.02}


def fake_sweep(tmp_path, scores: dict[float, list[float]], **plan):
    """A sweep directory whose runs finished with these vqa accuracies: {image_start_fraction:
    [seed 0, seed 1, ...]} (no training: the results files are what the planner reads)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_study(
        tmp_path,
        grid={"train.image_start_fraction": list(scores)},
        seeds="auto",
        seed_plan={**PLAN, **plan},
    )
    study = load_study(path)
    n = max(len(v) for v in scores.values())
    study = expand(study.spec, study.source, list(range(max(n, 1))))
    write_study_json(study)
    for run in study.runs:
        f, seed = run.settings["train.image_start_fraction"], run.settings["seed"]
        if seed >= len(scores[f]):
            continue
        rd = study.out_dir / "runs" / run.name
        rd.mkdir(parents=True)
        atomic_write_json(rd / "status.json", {"status": "done"})
        acc = scores[f][seed]
        atomic_write_json(rd / "results.json", {"eval": {"vqa": {"accuracy": acc, "n": 800}}})
    return study


def test_nothing_done_takes_the_first_start_seeds(tmp_path):
    d = plan_seeds(fake_sweep(tmp_path, {0.0: [], 1.0: []}))
    assert (d.complete, d.seeds, d.more) == (0, [0, 1, 2], True)


def test_separated_difference_needs_no_more_seeds(tmp_path):
    d = plan_seeds(fake_sweep(tmp_path, {0.0: [0.30, 0.31, 0.29], 1.0: [0.40, 0.42, 0.41]}))
    assert (d.seeds, d.more) == ([0, 1, 2], False)
    [c] = d.comparisons
    assert c.status == SEPARATED and c.ci[0] > 0 and c.diff == pytest.approx(0.11)


def test_open_difference_adds_one_seed_then_stops_when_separated(tmp_path):
    noisy = {0.0: [0.30, 0.36, 0.28], 1.0: [0.33, 0.35, 0.36]}
    d = plan_seeds(fake_sweep(tmp_path / "a", noisy))
    assert (d.seeds, d.more) == ([0, 1, 2, 3], True)
    assert d.comparisons[0].status == OPEN and "1 comparison(s) open" in d.reason
    # the fourth seed's difference agrees with the others: the interval leaves 0
    more = {0.0: [0.30, 0.36, 0.28, 0.30], 1.0: [0.34, 0.40, 0.33, 0.35]}
    d = plan_seeds(fake_sweep(tmp_path / "b", more))
    assert (d.complete, d.seeds, d.more) == (4, [0, 1, 2, 3], False)
    assert d.comparisons[0].status == SEPARATED


def test_a_narrow_interval_stops_without_a_sign(tmp_path):
    d = plan_seeds(fake_sweep(tmp_path, {0.0: [0.300, 0.302, 0.301], 1.0: [0.301, 0.301, 0.302]}))
    assert not d.more and d.comparisons[0].status == NARROW and d.comparisons[0].width <= 0.02


def test_an_interval_that_stopped_shrinking_stops(tmp_path):
    # the fourth seed's difference (-0.11) widens the interval the first three gave
    s = {0.0: [0.30, 0.36, 0.28, 0.45], 1.0: [0.33, 0.35, 0.36, 0.34]}
    d = plan_seeds(fake_sweep(tmp_path, s))
    [c] = d.comparisons
    assert c.status == STALLED and c.prev_width is not None and c.width > 0.9 * c.prev_width
    assert (d.seeds, d.more) == ([0, 1, 2, 3], False)


def test_budget_caps_the_seeds(tmp_path):
    s = {0.0: [0.30, 0.36, 0.28, 0.31, 0.33], 1.0: [0.33, 0.35, 0.36, 0.30, 0.37]}
    d = plan_seeds(fake_sweep(tmp_path, s, min_shrink=0.0))
    assert (d.seeds, d.more) == ([0, 1, 2, 3, 4], False) and "budget of 5" in d.reason


def test_a_setting_missing_a_seed_keeps_the_round_open(tmp_path):
    d = plan_seeds(fake_sweep(tmp_path, {0.0: [0.3, 0.3, 0.3], 1.0: [0.4, 0.4]}))
    assert (d.complete, d.seeds, d.more) == (2, [0, 1, 2], True)


def test_plan_seeds_cli_prints_the_seeds_and_why(tmp_path, capsys):
    from vloom.cli import main

    study = fake_sweep(tmp_path, {0.0: [0.30, 0.36, 0.28], 1.0: [0.33, 0.35, 0.36]})
    assert main(["sweep", str(study.source), "--plan-seeds"]) in (0, None)
    out = capsys.readouterr().out
    assert "3 complete round(s); take seeds 0..3: 1 comparison(s) open" in out
    assert "vqa.accuracy: image_start_fraction=1 - image_start_fraction=0 = +0.0333" in out
    assert not (study.out_dir / "runs" / "image_start_fraction-0_seed-3").exists()


def test_an_unknown_metric_is_a_one_line_error(tmp_path):
    study = fake_sweep(tmp_path, {0.0: [0.3] * 3, 1.0: [0.4] * 3}, metrics=["vqa.acuracy"])
    with pytest.raises(ValueError, match="no finished run reports 'vqa.acuracy'"):
        plan_seeds(study)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"seeds": [0, 1], "seed_plan": PLAN}, "seed_plan applies to `seeds: auto` only"),
        ({"seeds": "auto", "seed_plan": {"start": 4, "budget": 3}}, "exceeds budget"),
    ],
)
def test_bad_seed_plans_are_config_errors(tmp_path, fields, message):
    with pytest.raises(ConfigError, match=message):
        load_study(write_study(tmp_path, **fields))


@pytest.mark.slow
def test_a_tiny_auto_sweep_runs_rounds_until_the_budget(tmp_path):
    plan = {"metrics": ["vqa.accuracy"], "start": 2, "budget": 3, "min_shrink": 0.0}
    study = load_study(write_study(tmp_path, seeds="auto", seed_plan=plan))
    out = run_sweep(study, quiet=True)
    assert not out["failed"] and out["seeds"] in ([0, 1], [0, 1, 2])
    assert len(out["done"]) == 2 * len(out["seeds"])
    runs = json.loads((study.out_dir / "study.json").read_text())["runs"]
    assert sorted(r["settings"]["seed"] for r in runs) == sorted(out["seeds"] * 2)
    assert plan_seeds(study).more is False  # a rerun adds nothing


def test_under_slurm_each_call_writes_the_round_the_results_ask_for(tmp_path, capsys):
    from vloom.cli import main

    plan = {**PLAN, "start": 2}
    path = write_study(tmp_path, seeds="auto", seed_plan=plan, executor="slurm")
    assert main(["sweep", str(path)]) == 0
    listed = (tmp_path / "sweep" / "runs.txt").read_text().split()
    assert sorted(listed) == sorted(
        f"image_start_fraction-{f}_seed-{s}" for f in (0, 1) for s in (0, 1)
    )
    assert "take seeds 0..1: the first 2" in capsys.readouterr().out
    # an array task names a run of that round (the study is expanded from the same decision)
    study = load_study(path)
    task = expand(study.spec, study.source, plan_seeds(study).seeds)
    assert {r.name for r in task.runs} == set(listed)


def test_one_setting_has_nothing_to_compare(tmp_path):
    d = plan_seeds(fake_sweep(tmp_path, {0.5: [0.3, 0.4, 0.5]}))
    assert (d.seeds, d.more, d.reason) == ([0, 1, 2], False, "one setting: nothing to compare")
