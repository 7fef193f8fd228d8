"""A sweep killed mid-write: a torn marker (shared data, a run's status, config or results)
reruns what it marks, and unreadable metrics lines are skipped, counted and named."""

from __future__ import annotations

import json
import shutil

import pytest
from sweepkit import write_study

from vloom.sweep import load_study, run_sweep

NAME = "image_start_fraction-0_seed-0"
FIELDS = {"grid": {"train.image_start_fraction": [0.0]}, "seeds": [0], "finetune": None}


@pytest.fixture(scope="module")
def done_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("markers")
    out = run_sweep(load_study(write_study(tmp, tokens=512, **FIELDS)), quiet=True)
    assert out["done"] == [NAME]
    return tmp / "sweep"


@pytest.fixture
def sweep(done_sweep, tmp_path):
    """A copy of the finished sweep and its study file (the same configs, another directory)."""
    shutil.copytree(done_sweep, tmp_path / "sweep", symlinks=True)
    return tmp_path / "sweep", write_study(tmp_path, tokens=512, **FIELDS)


def _tear(path):
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def _data(sweep_dir):
    (data,) = (sweep_dir / "data").iterdir()
    return data


@pytest.mark.parametrize(
    "torn",
    ["packed/stats.json", "curated/ledger.json", "synth/manifest.json"],
)
def test_torn_shared_data_marker_rebuilds_that_stage(sweep, torn):
    sweep_dir, study = sweep
    marker = _data(sweep_dir) / torn
    _tear(marker)
    _tear(sweep_dir / "runs" / NAME / "status.json")
    out = run_sweep(load_study(study), quiet=True)
    assert out["done"] == [NAME], out
    json.loads(marker.read_text())  # rebuilt, whole


@pytest.mark.parametrize("torn", ["results.json", "config.json", "status.json"])
def test_torn_run_file_reruns_the_run(sweep, torn):
    sweep_dir, study = sweep
    run = sweep_dir / "runs" / NAME
    _tear(run / torn)
    out = run_sweep(load_study(study), quiet=True)
    assert out["done"] == [NAME] and not out["failed"], out
    for f in ("results.json", "config.json", "status.json"):
        json.loads((run / f).read_text())
    assert "| done |" in (sweep_dir / "study.md").read_text()


def test_bad_metrics_lines_are_skipped_counted_and_named(sweep):
    sweep_dir, study = sweep
    run = sweep_dir / "runs" / NAME
    with open(run / "pretrain" / "metrics.jsonl", "ab") as f:
        f.write(b"\xff\xfe not utf-8\n")
        f.write(b'{"step": "x", "loss": 1.0}\n')  # a record without a numeric step
        f.write(b"not json at all\n")
        f.write(b'{"step": 3, "lo')  # the torn last line of a kill mid-write
    (run / "status.json").unlink()
    out = run_sweep(load_study(study), quiet=True)
    assert out["done"] == [NAME] and not out["failed"], out
    status = json.loads((run / "status.json").read_text())
    assert status["metrics_skipped"] == {"pretrain/metrics.jsonl": 4}
    md = (sweep_dir / "study.md").read_text()
    assert f"`{NAME}`: 4 unreadable line(s) in `pretrain/metrics.jsonl` skipped" in md
    summary = json.loads((sweep_dir / "study_summary.json").read_text())
    assert summary["metrics_skipped"] == {NAME: {"pretrain/metrics.jsonl": 4}}
    merged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in merged] == [2]  # the good record kept
