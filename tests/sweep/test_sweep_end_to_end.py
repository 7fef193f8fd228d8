"""A tiny study end to end: 2 settings x 2 seeds, shared data, fine-tuning, report, restart,
a crashing run, the SLURM script actually run for one array task."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sweepkit import write_study

from vloom.sweep import load_study, run_sweep


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    # every fine-tuning row from the image sources: a pair longer than a 64-token row leaves
    # caption-only rows, and the two logged steps of 4 rows at 0.8 could hold no image
    study = load_study(
        write_study(tmp, finetune={"steps": 4, "warmup_steps": 1, "image_text_ratio": 1.0})
    )
    out = run_sweep(study, quiet=True)
    return study, out


def _records(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_every_run_done_on_data_built_once(swept):
    study, out = swept
    assert sorted(out["done"]) == sorted(r.name for r in study.runs) and not out["failed"]
    data = list((study.out_dir / "data").iterdir())
    assert len(data) == 1 and (data[0] / "packed" / "stats.json").exists()
    for r in study.runs:
        rd = study.out_dir / "runs" / r.name
        assert not (rd / "synth").exists()  # no per-run copy of the data
        assert (rd / "packed").resolve() == (data[0] / "packed").resolve()
        res = json.loads((rd / "results.json").read_text())
        assert res["train"]["pretrain_tokens"] == 2048  # equal compute
        assert res["train"]["finetune_steps"] == 4
        assert {"vqa", "text_qa", "text_ppl", "caption_loss"} <= set(res["eval"])
        assert (rd / "report.md").exists() and (rd / "report.html").exists()


def test_finetuning_starts_from_pretrained_weights_with_images_on(swept):
    study, _ = swept
    rd = study.out_dir / "runs" / "image_start_fraction-1_seed-0"
    recs = _records(rd / "metrics.jsonl")
    pre = [r for r in recs if r["stage"] != "finetune"]
    ft = [r for r in recs if r["stage"] == "finetune"]
    assert [r["step"] for r in ft] == [10, 12]  # after pre-training's 8 steps
    assert all(r["image_frac"] == 0 for r in pre)  # 1.0: text-only pre-training
    assert any(r["image_frac"] > 0 for r in ft)  # images in fine-tuning
    # Started from the trained weights, not from scratch: below the first pre-training loss.
    assert ft[0]["loss"] < pre[0]["loss"] - 0.1


def test_study_report_has_mean_std_over_seeds_and_plots(swept):
    study, _ = swept
    md = (study.out_dir / "study.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| metric |"))
    assert "image_start_fraction=0" in header and "image_start_fraction=1" in header
    for key in ("vision-language average", "text-only average", "vqa.accuracy", "text_ppl.loss"):
        row = next(line for line in md.splitlines() if line.startswith(f"| {key} |"))
        assert row.count("(n=2)") == 2 and row.count("±") == 2
    # The numbers are the mean of the two seeds' results.json.
    accs = [
        json.loads(
            (
                study.out_dir / "runs" / f"image_start_fraction-0_seed-{s}" / "results.json"
            ).read_text()
        )["eval"]["vqa"]["accuracy"]
        for s in (0, 1)
    ]
    summary = json.loads((study.out_dir / "study_summary.json").read_text())
    mean = summary["settings"][0]["stats"]["vqa.accuracy"][0]
    assert mean == pytest.approx(sum(accs) / 2)
    assert (study.out_dir / "plots" / "study.png").stat().st_size > 1000
    assert "data:image/png;base64," in (study.out_dir / "study.html").read_text()


def test_restart_skips_completed_runs(swept):
    study, _ = swept
    results = {r.name: (study.out_dir / "runs" / r.name / "results.json") for r in study.runs}
    before = {n: p.stat().st_mtime_ns for n, p in results.items()}
    again = run_sweep(load_study(study.source), quiet=True)
    assert sorted(again["skipped"]) == sorted(results) and again["done"] == []
    assert {n: p.stat().st_mtime_ns for n, p in results.items()} == before


def test_tensorboard_events_mirror_metrics(swept):
    pytest.importorskip(
        "tensorboard", reason="TensorBoard is an optional extra: pip install 'vloom[logging]'"
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    study, _ = swept
    pre = study.out_dir / "runs" / "image_start_fraction-0_seed-1" / "pretrain"
    acc = EventAccumulator(str(pre / "tb"))
    acc.Reload()
    tb = acc.Scalars("train/loss")
    recs = _records(pre / "metrics.jsonl")
    assert [e.step for e in tb] == [r["step"] for r in recs]
    assert [e.value for e in tb] == pytest.approx([r["loss"] for r in recs], rel=1e-6)  # float32


def test_a_crashing_run_is_marked_failed_and_the_sweep_goes_on(tmp_path):
    path = write_study(
        tmp_path, grid={"model.vision.patch_size": [8, 5]}, seeds=[0], finetune=None, tokens=1024
    )
    out = run_sweep(load_study(path), quiet=True)
    assert out["done"] == ["patch_size-8_seed-0"]
    err = out["failed"]["patch_size-5_seed-0"]
    assert "not a multiple of model.vision.patch_size" in err and "\n" not in err
    md = (tmp_path / "sweep" / "study.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| patch_size-5_seed-0 |"))
    assert "| failed |" in row and "not a multiple" in row
    assert (
        "Traceback"
        in (tmp_path / "sweep" / "runs" / "patch_size-5_seed-0" / "error.txt").read_text()
    )


def test_slurm_array_task_runs_its_run(tmp_path, capsys):
    from vloom.cli import main

    path = write_study(
        tmp_path,
        grid={"train.image_start_fraction": [0.5]},
        seeds=[0, 1],
        finetune=None,
        tokens=512,
    )
    assert main(["sweep", str(path), "--executor", "slurm"]) == 0
    printed = capsys.readouterr().out
    script = tmp_path / "sweep" / "sweep.sbatch"
    assert f"sbatch {script}" in printed
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = tmp_path / "sweep" / "runs"
    assert (
        json.loads((runs / "image_start_fraction-0.5_seed-1" / "status.json").read_text())["status"]
        == "done"
    )
    assert not (runs / "image_start_fraction-0.5_seed-0").exists()  # task 1 ran only its run


def test_changed_study_does_not_reuse_runs_of_another_config(tmp_path):
    path = write_study(
        tmp_path, grid={"train.image_start_fraction": [0.0]}, seeds=[0], finetune=None, tokens=512
    )
    assert run_sweep(load_study(path), quiet=True)["done"] == ["image_start_fraction-0_seed-0"]
    changed = write_study(
        tmp_path, grid={"train.image_start_fraction": [0.0]}, seeds=[0], finetune=None, tokens=1024
    )
    out = run_sweep(load_study(changed), quiet=True)
    assert (
        out["skipped"] == []
        and "holds a run of a different config" in out["failed"]["image_start_fraction-0_seed-0"]
    )
    # The earlier results are kept, not overwritten.
    res = json.loads(
        (tmp_path / "sweep" / "runs" / "image_start_fraction-0_seed-0" / "results.json").read_text()
    )
    assert res["train"]["tokens"] == 512
