from __future__ import annotations

from vloom.ledger import Ledger
from vloom.report.tables import eval_table, fmt, fmt_seconds, ledger_table, md_table


def test_fmt():
    assert fmt(871) == "871"
    assert fmt(0.41250) == "0.4125"
    assert fmt(51234.56) == "51234.6"
    assert fmt(40.0) == "40"
    assert fmt(None) == ""
    assert fmt(True) == "yes"
    assert fmt(["vqa", "text_qa"]) == "vqa, text_qa"
    assert fmt_seconds(125.0) == "125.0 (2m 5s)"


def test_md_table_escapes_pipes():
    md = md_table(["a", "b"], [["x|y", 1]])
    assert md.splitlines()[2] == "| x\\|y | 1 |"


def test_ledger_table_shares_and_rejected(row):
    led = Ledger(input=200, kept=150)
    led.drop("lang_id", "not_english", 30)
    led.reject("bad parquet row", 20)
    md = ledger_table(led)
    assert row(md, "dropped by lang_id") == ["dropped by lang_id", "not_english", "30", "15.0%"]
    assert row(md, "rejected") == ["rejected", "bad parquet row", "20", "10.0%"]
    assert "Warning" not in md


def test_eval_table_delta_only_for_two_runs(row):
    evals = {"a": {"t": {"accuracy": 0.5}}, "b": {"t": {"accuracy": 0.25}}}
    assert row(eval_table(evals, delta=True), "t.accuracy")[1:] == ["0.5", "0.25", "+0.25"]
    three = {**evals, "c": {"u": {"loss": 2.0}}}
    md = eval_table(three, delta=True)
    assert row(md, "task.metric") == ["task.metric", "a", "b", "c"]
    assert row(md, "u.loss")[1:] == ["", "", "2"]
