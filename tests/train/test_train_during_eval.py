"""eval.during_training: benchmarks on the model being trained, recorded in metrics.jsonl
against tokens seen, equal to `evaluate()` on the same step's checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tinyexp import tiny_config, tiny_raw

from vloom.config import ConfigError, config_from_dict
from vloom.evaluate import evaluate
from vloom.report import write_report
from vloom.train import train
from vloom.train.evalhook import DuringTraining, flatten

TASKS = ["text_ppl", "vqa"]
N = 6  # examples per task in each in-training evaluation


def _raw(**kw) -> dict:
    base = {
        "train__steps": 4,
        "train__checkpoint_every": 2,
        "eval__during_training__every": 2,
        "eval__during_training__tasks": TASKS,
        "eval__during_training__max_examples": N,
    }
    return tiny_raw(**{**base, **kw})


def _cfg(**kw):
    return config_from_dict(_raw(**kw))


def _records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _evals(run: Path) -> list[dict]:
    return [r for r in _records(run) if "eval_s" in r]


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("during") / "run"
    train(_cfg(), tiny_data["packed"], run, quiet=True, eval_dir=tiny_data["eval"])
    return run


def test_records_equal_evaluate_on_the_step_checkpoints(trained, tiny_data):
    cfg = _cfg()
    evals = _evals(trained)
    step_tokens = cfg.train.batch_size * cfg.train.grad_accum * cfg.pack.seq_len
    assert [(r["step"], r["tokens"]) for r in evals] == [(s, s * step_tokens) for s in (0, 2, 4)]
    ckpts = {2: trained / "checkpoints" / "step-000002", 4: trained / "checkpoints" / "final"}
    for rec in evals[1:]:
        ref = evaluate(
            ckpts[rec["step"]],
            tiny_data["eval"],
            TASKS,
            tokenizer_path=tiny_data["packed"] / "tokenizer.json",
            batch_size=cfg.eval.batch_size,
            max_examples=N,
            seed=cfg.eval.seed,
        )
        assert ref["vqa"]["n"] == N
        want = flatten(ref)
        got = {k: v for k, v in rec.items() if k.startswith("eval/")}
        assert got.keys() == want.keys()
        for k, v in want.items():
            assert got[k] == v, (rec["step"], k)
    ppl = [r["eval/text_ppl/perplexity"] for r in evals]
    assert ppl[-1] < ppl[0]  # the curve shows the model learning


def test_training_is_unchanged_by_evaluating(trained, tiny_data, tmp_path):
    plain = tmp_path / "plain"
    train(
        _cfg(eval__during_training__every=None), tiny_data["packed"], plain, quiet=True
    )  # off: no eval dir needed
    losses = [(r["step"], r["loss"]) for r in _records(plain)]
    assert losses == [(r["step"], r["loss"]) for r in _records(trained) if "loss" in r]
    assert not _evals(plain)


def test_report_plots_the_curves(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    md = write_report(run).read_text()
    assert "### Benchmarks during training" in md
    assert "![benchmarks during training](plots/eval_curves.png)" in md
    assert (run / "plots" / "eval_curves.png").stat().st_size > 5_000
    html = (run / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == md.count("](plots/")


def test_resume_keeps_one_record_per_step(tiny_data, tmp_path):
    run = tmp_path / "run"
    cfg = _cfg(train__steps=6)
    train(cfg, tiny_data["packed"], run, quiet=True, eval_dir=tiny_data["eval"])
    before = _records(run)
    # a kill after the step-6 lines, before the final checkpoint: resume from step 4
    shutil.rmtree(run / "checkpoints" / "final")
    (run / "train_summary.json").unlink()
    s = train(cfg, tiny_data["packed"], run, quiet=True, eval_dir=tiny_data["eval"])
    assert s["resumed_from"].endswith("step-000004")
    after = _records(run)
    assert [r["step"] for r in _evals(run)] == [0, 2, 4, 6]
    train_steps = [r["step"] for r in after if "loss" in r]
    assert train_steps == [2, 4, 6]  # the checkpoint's own step kept, later ones redone
    assert [r for r in after if r["step"] <= 4] == [r for r in before if r["step"] <= 4]
    redone = [{k: v for k, v in r.items() if "_s" not in k} for r in after if r["step"] == 6]
    again = [{k: v for k, v in r.items() if "_s" not in k} for r in before if r["step"] == 6]
    assert redone == again  # same weights at step 6, same scores


def test_unknown_task_fails_before_training(tiny_data, tmp_path):
    cfg = _cfg(eval__during_training__tasks=["vqa", "nope"])
    with pytest.raises(ValueError, match="unknown eval task 'nope'"):
        train(cfg, tiny_data["packed"], tmp_path / "run", quiet=True, eval_dir=tiny_data["eval"])
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unknown_task_is_one_line_on_the_cli(tiny_data, tmp_path):
    raw = _raw(eval__during_training__tasks=["nope"])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "vloom", "train", str(tiny_data["packed"])]
    cmd += ["--out", str(tmp_path / "run"), "--config", str(tmp_path / "c.yaml")]
    cmd += ["--eval-dir", str(tiny_data["eval"]), "--quiet"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "unknown eval task 'nope'" in err[0], res.stderr[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_needs_an_eval_dir_and_refuses_fsdp(tiny_data):
    cfg = _cfg()
    layout, tok = None, tiny_data["packed"] / "tokenizer.json"
    with pytest.raises(ValueError, match="needs the evaluation directory"):
        DuringTraining(cfg, None, tok, layout, fsdp=False)
    with pytest.raises(ValueError, match="not supported with train.parallel=fsdp"):
        DuringTraining(cfg, tiny_data["eval"], tok, layout, fsdp=True)
    with pytest.raises(FileNotFoundError, match="evaluation directory does not exist"):
        DuringTraining(cfg, tiny_data["eval"] / "missing", tok, layout, fsdp=False)


def test_every_tokens_and_config_errors(tiny_data):
    from vloom.sequence import DEFAULT_LAYOUT

    cfg = tiny_config(eval__during_training__every_tokens=600)
    assert cfg.eval.during_tasks == cfg.eval.tasks  # default: the final eval's tasks
    dt = DuringTraining(
        cfg, tiny_data["eval"], tiny_data["packed"] / "tokenizer.json", DEFAULT_LAYOUT, False
    )
    # 256 tokens a step: 600, 1200, 1800 are crossed by steps 3, 5 and 8
    due = [s for s in range(1, 9) if dt.due(s, 256 * s, 256, last=s == 8)]
    assert due == [3, 5, 8]
    assert tiny_config().eval.during_tasks == []  # off by default
    with pytest.raises(ConfigError, match="every or every_tokens, not both"):
        tiny_config(eval__during_training__every=2, eval__during_training__every_tokens=9)


ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")


def test_ddp_rank0_evaluates_and_matches_one_process(trained, tiny_data, tmp_path):
    """Two gloo ranks: one record per evaluation step, equal to one process's (same weights)."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_raw()))
    launch = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "vloom", "train", str(tiny_data["packed"]), "--out", str(tmp_path / "two"),
        "--config", str(tmp_path / "c.yaml"), "--eval-dir", str(tiny_data["eval"]), "--quiet",
    ]  # fmt: skip
    res = subprocess.run(launch, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    got, ref = _evals(tmp_path / "two"), _evals(trained)
    assert [r["step"] for r in got] == [0, 2, 4]
    for a, b in zip(got, ref, strict=True):
        for k in (k for k in b if k.startswith("eval/")):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), (a["step"], k)


def test_vloom_run_chain_passes_the_eval_dir(tiny_data, tmp_path):
    """train_and_eval (what `vloom run` and sweep runs call) gives training the eval sets."""
    from vloom.pipeline import DataDirs, train_and_eval

    cfg = _cfg(eval__tasks=["vqa"], eval__max_examples=N, eval__during_training__tasks=None)
    res = train_and_eval(cfg, tmp_path / "run", DataDirs(tiny_data["root"]), quiet=True)
    last = _evals(tmp_path / "run")[-1]
    assert last["step"] == 4 and last["eval/vqa/accuracy"] == res["eval"]["vqa"]["accuracy"]
    assert res["train"]["during_eval_s"] > 0


def test_sweep_merge_keeps_tokens_going_into_finetuning(tmp_path):
    """A study run's metrics.jsonl puts fine-tuning after pre-training on both axes."""
    from vloom.sweep.runone import merge_metrics

    for part, n in (("pretrain", 4), ("finetune", 2)):
        (tmp_path / part).mkdir()
        recs = [{"step": s, "tokens": 256 * s, "eval/vqa/accuracy": 0.25} for s in range(n + 1)]
        recs += [{"step": n, "tokens": 256 * n, "loss": 1.0}]
        (tmp_path / part / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    merge_metrics(tmp_path, [(tmp_path / "pretrain", 0), (tmp_path / "finetune", 4)])
    evals = [r for r in _records(tmp_path) if "eval/vqa/accuracy" in r]
    assert [(r["step"], r["tokens"]) for r in evals] == [(s, 256 * s) for s in (0, 1, 2, 3, 4)] + [
        (4, 1024),
        (5, 1280),
        (6, 1536),
    ]
