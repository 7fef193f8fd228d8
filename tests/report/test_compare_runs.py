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


def _records(correct: list[int]) -> list[dict]:
    return [{"id": f"vqa-{i:05d}", "correct": c, "qtype": "colour"} for i, c in enumerate(correct)]


def test_runs_with_records_get_intervals_against_the_first(tmp_path, make_run, run_eval):
    from vloom.evaluate.records import write_examples

    ev_a, ev_b = dict(run_eval), dict(run_eval)
    a = make_run(tmp_path / "a", control=False, ev=ev_a)
    b = make_run(tmp_path / "b", control=False, ev=ev_b)
    c = make_run(tmp_path / "c", control=False, ev=dict(run_eval))
    base = [1 if i % 2 else 0 for i in range(400)]  # 0.50
    better = [1 if i % 5 else 0 for i in range(400)]  # 0.80, right wherever base is
    write_examples(a, {"vqa": _records(base)})
    write_examples(b, {"vqa": _records(better)})
    write_examples(c, {"vqa": _records(base)})
    md = compare_runs([a, b, c])
    assert "### b against a" in md and "### c against a" in md
    rows = {
        ln.split("|")[1].strip(): ln
        for ln in md.split("### b against a")[1].splitlines()[:6]
        if ln.startswith("| vqa")
    }
    cells = [x.strip() for x in rows["vqa"].split("|")[1:-1]]
    diff = cells[4]
    assert diff.startswith("+0.3 [") and float(diff.split("[")[1].split(",")[0]) > 0.2
    assert "b - a is resolved" in md
    assert "c - a is not resolved (the interval holds 0) on vqa" in md
    # runs without records: the plain table only
    assert "against" not in compare_runs([make_run(tmp_path / "d"), make_run(tmp_path / "e")])
