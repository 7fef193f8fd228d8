from __future__ import annotations

import pytest

from vloom.report import compare_runs


def test_union_of_metrics_blank_where_absent(tmp_path, make_run, run_eval, row):
    a = make_run(tmp_path / "runs" / "img80", control=False)
    ev = run_eval
    del ev["vqa"]["accuracy_position"]  # an older eval without this question type
    ev["text_qa"]["accuracy"] = 0.41
    ev["mmlu_tiny"] = {"accuracy": 0.27, "n": 57}  # a task only this run has
    b = make_run(tmp_path / "runs" / "img100", control=False, ev=ev)

    md = compare_runs([a, b])
    assert row(md, "metric") == ["metric", "img80", "img100"]
    assert row(md, "vqa.accuracy_position")[1:] == ["0.2875", ""]
    assert row(md, "mmlu_tiny.accuracy")[1:] == ["", "0.27"]
    assert row(md, "mmlu_tiny.n")[1:] == ["", "57"]
    assert row(md, "text_qa.accuracy")[1:] == ["0.355", "0.41"]
    assert row(md, "caption_loss.loss")[1:] == ["2.871", "2.871"]
    assert row(md, "train.steps")[1:] == ["40", "40"]
    assert row(md, "train.tokens")[1:] == ["167936", "167936"]
    assert row(md, "train.tokens_per_s")[1:] == ["51234.5", "51234.5"]
    # every task.metric of either run is a row
    keys = {f"{t}.{m}" for t, ms in ev.items() for m in ms} | {"vqa.accuracy_position"}
    for key in keys:
        row(md, key)


def test_missing_results_names_the_directory(tmp_path, make_run):
    a = make_run(tmp_path / "done", control=False)
    b = make_run(tmp_path / "unfinished", control=False, results=False)
    with pytest.raises(ValueError) as err:
        compare_runs([a, b])
    msg = str(err.value)
    assert msg == f"{b}: no results.json (evaluation has not run there)"
    assert "\n" not in msg


def test_malformed_results_names_the_file(tmp_path, make_run):
    a = make_run(tmp_path / "a", control=False)
    (a / "results.json").write_text("[]")
    with pytest.raises(ValueError, match="results.json: expected a JSON object"):
        compare_runs([a])


def test_same_named_runs_get_distinct_columns(tmp_path, make_run, row):
    make_run(tmp_path / "x")
    make_run(tmp_path / "y")
    md = compare_runs([tmp_path / "x" / "control", tmp_path / "y" / "control"])
    assert row(md, "metric")[1:] == ["x/control", "y/control"]
    assert row(md, "vqa.accuracy")[1:] == ["0.2475", "0.2475"]


def test_no_runs():
    with pytest.raises(ValueError, match="no run directories"):
        compare_runs([])
