from __future__ import annotations

import json

import pytest
from PIL import Image

from vloom.report import write_report


def _assert_png(path, min_size=(300, 200)):
    assert path.is_file() and path.stat().st_size > 5_000, path
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] >= min_size[0] and im.size[1] >= min_size[1]
        # a real plot, not a blank canvas: many distinct colours from lines, text and bars
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20)) > 50


def test_full_run_report(tmp_path, make_run, row):
    run = make_run(tmp_path / "demo")
    path = write_report(run)
    assert path == run / "report.md"
    md = path.read_text()
    assert md.startswith("# Run report: demo")

    # ledger numbers, per step and reason, and the funnel
    assert row(md, "input")[2] == "1000"
    assert row(md, "kept")[2:] == ["871", "87.1%"]
    assert row(md, "dropped by exact_dedup")[1:3] == ["duplicate", "52"]
    assert "| dropped by gopher_quality | too_short | 41 |" in md
    assert "| dropped by gopher_quality | symbol_ratio | 20 |" in md
    assert "| rejected | undecodable image | 16 |" in md
    assert row(md, "gopher_quality")[1:] == ["871", "6533", "377002"]
    assert "| dropped by pack | too_long | 11 |" in md  # the packed ledger too
    assert row(md, "sequences.image")[1] == "1277"

    # config summary and the collapsed YAML
    assert row(md, "image start fraction")[1] == "0.5"
    assert row(md, "training steps")[1] == "40"
    assert "<details><summary>Settings and the full config (YAML)</summary>" in md
    assert "image_start_fraction: 0.5" in md

    # every task.metric with both runs' values and the difference
    header = row(md, "task.metric")
    assert header[1:] == ["demo", "control", "demo - control"]
    assert row(md, "vqa.accuracy")[1:] == ["0.4125", "0.2475", "+0.165"]
    assert row(md, "text_ppl.perplexity")[1:3] == ["38.21", "36.87"]
    assert row(md, "text_ppl.loss")[1:3] == ["3.643", "3.607"]
    assert row(md, "text_qa.accuracy")[1:] == ["0.355", "0.365", "-0.01"]
    assert row(md, "caption_loss.loss")[1:3] == ["2.871", "5.912"]
    assert row(md, "vqa.n")[1:] == ["400", "400", ""]  # counts get no delta

    # VQA accuracy per question type, explicitly
    assert "### vqa: accuracy per question type" in md
    assert row(md, "colour")[1:] == ["0.5625", "0.2615"]
    assert row(md, "position")[1:] == ["0.2875", "0.2375"]
    assert row(md, "all")[1:] == ["0.4125", "0.2475"]

    # training: truncated line counted, image entry found, throughput from results.json
    assert "demo: 1 unreadable line(s) in metrics.jsonl skipped" in md
    assert "demo: image data enters at step 20" in md
    assert "control: image data enters" not in md
    assert row(md, "steps trained")[1:] == ["40", "40"]
    assert row(md, "tokens/s")[1:] == ["51234.5", "51234.5"]

    assert "![training loss](plots/loss.png)" in md
    assert "![evaluation](plots/eval.png)" in md
    _assert_png(run / "plots" / "loss.png")
    _assert_png(run / "plots" / "eval.png")


def test_report_is_deterministic(tmp_path, make_run):
    run = make_run(tmp_path / "demo")
    write_report(run)
    first = {p: (run / p).read_bytes() for p in ("report.md", "plots/loss.png", "plots/eval.png")}
    write_report(run)
    for p, data in first.items():
        assert (run / p).read_bytes() == data, p


def test_missing_results_is_said_not_raised(tmp_path, make_run, row):
    run = make_run(tmp_path / "half", control=False, results=False)
    md = write_report(run).read_text()
    assert "no results.json" in md and "evaluation has not run" in md
    assert "task.metric" not in md
    assert "![evaluation]" not in md
    assert row(md, "kept")[2] == "871"  # the stages that did run are still reported
    # throughput falls back to metrics.jsonl: last complete step, its cumulative tokens
    assert row(md, "steps trained")[1:] == ["40"]
    assert row(md, "tokens trained")[1:] == [str(4096 * 41)]
    assert (run / "plots" / "eval.png").is_file()  # a placeholder replaces any stale figure


def test_control_without_results(tmp_path, make_run, row):
    run = make_run(tmp_path / "demo", control_results=False)
    md = write_report(run).read_text()
    assert "- control: no results.json" in md
    assert row(md, "task.metric")[1:] == ["demo"]
    assert row(md, "vqa.accuracy")[1:] == ["0.4125"]


def test_empty_run_directory(tmp_path):
    md = write_report(tmp_path).read_text()
    assert "no config.json" in md
    assert "no curated/ledger.json: curation has not run." in md
    assert "no packed/ledger.json: packing has not run." in md
    assert "no usable metrics.jsonl: training has not run." in md
    assert "evaluation has not run" in md
    assert "![training loss]" not in md
    with Image.open(tmp_path / "plots" / "loss.png") as im:
        assert im.format == "PNG"


def test_unreadable_files_are_named(tmp_path, make_run):
    run = make_run(tmp_path / "demo", control=False)
    (run / "results.json").write_text('{"eval": {"vqa": ')
    (run / "curated" / "ledger.json").write_text("[1, 2]")
    md = write_report(run).read_text()
    assert f"{run / 'results.json'}: not valid JSON" in md
    assert f"{run / 'curated' / 'ledger.json'}: not a ledger" in md


def test_unbalanced_ledger_is_flagged(tmp_path, make_run):
    run = make_run(tmp_path / "demo", control=False)
    led = json.loads((run / "curated" / "ledger.json").read_text())
    led["input"] = 1003
    (run / "curated" / "ledger.json").write_text(json.dumps(led))
    md = write_report(run).read_text()
    assert "**Warning:** ledger does not add up: input 1003 != kept 871" in md


def test_not_a_directory(tmp_path):
    with pytest.raises(ValueError, match="nope: not a run directory"):
        write_report(tmp_path / "nope")
