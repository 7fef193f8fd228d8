"""An rl stage in the training loop: it runs on the tiny world, writes reward/KL/length/accuracy
lines and a summary, and a run resumed inside its second stage ends with the same weights; the
SCoRe recipes answer twice with `second_attempt_prompt`."""

import contextlib
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from tinyexp import tiny_config, tiny_raw

from vloom.config import config_from_dict
from vloom.model.io import build_model
from vloom.rl.recipes import recipe_for
from vloom.rl.step import RLStep
from vloom.sequence import load_tokenizer
from vloom.train import train
from vloom.train.distributed import DistInfo

RL = {"prompts_per_step": 2, "group_size": 3, "max_new_tokens": 6, "prompts": 20}


def _rl_raw(**rl):
    raw = tiny_raw(train__steps=4, train__checkpoint_every=3, train__log_every=1)
    raw["train"]["stages"] = [
        {"name": "a", "kind": "rl", "steps": 2},
        {"name": "b", "kind": "rl", "steps": 2, "lr": 1e-3},
    ]
    raw["rl"] = {**RL, **rl}
    return raw


def test_rl_stage_runs_and_resumes_inside_its_second_stage(tiny_data, tmp_path):
    cfg = config_from_dict(_rl_raw())
    a = tmp_path / "a"
    summary = train(cfg, tiny_data["packed"], a, quiet=True)
    lines = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    for x in lines:
        for k in ("reward", "kl", "response_len", "acc_t1", "loss", "lr"):
            assert isinstance(x[k], float | int), (k, x)
        assert x["rl_recipe"] == "grpo" and x["reward_skips"] == {}
    assert lines[0]["kl"] == 0.0 and lines[2]["kl"] == 0.0  # each stage starts at its reference
    rl = summary["rl"]
    assert set(rl) == {"a", "b"} and rl["a"]["steps"] == 2
    assert set(rl["b"]["end"]) >= {"reward", "kl", "response_len", "acc_t1"}

    b = tmp_path / "b"  # a run killed after step 3: stage a's end and step 3 on disk
    for name in ("stage-a", "step-000003"):
        shutil.copytree(a / "checkpoints" / name, b / "checkpoints" / name)
    resumed = train(cfg, tiny_data["packed"], b, quiet=True)
    assert resumed["resumed_from"].endswith("step-000003")
    wa = load_file(str(a / "checkpoints" / "final" / "model.safetensors"))
    wb = load_file(str(b / "checkpoints" / "final" / "model.safetensors"))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_bad_reward_is_counted_and_the_run_goes_on(tiny_data, tmp_path, monkeypatch):
    (tmp_path / "bad_reward.py").write_text(
        "def flaky(row, response):\n"
        "    if row['qtype'] == 'colour':\n"
        "        raise RuntimeError('no')\n"
        "    return None if row['qtype'] == 'shape' else 1.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = _rl_raw(reward="bad_reward:flaky", qtypes=["colour", "shape", "count"])
    raw["train"].update(steps=2, stages=[{"name": "a", "kind": "rl"}])
    summary = train(config_from_dict(raw), tiny_data["packed"], tmp_path / "r", quiet=True)
    skips = summary["rl"]["a"]["reward_skips"]
    assert set(skips) <= {"flaky:RuntimeError", "flaky:not_a_number"} and sum(skips.values()) > 0


def test_score_recipes(tiny_data):
    raw = _rl_raw(recipe="score", attempts=2, score={"alpha": 2.0, "beta1": 0.0, "beta2": 0.5})
    cfg = config_from_dict(raw)
    one, two = (recipe_for(cfg.rl, cfg.train.stages, i) for i in (0, 1))
    assert (one.name, one.pg, one.kl) == ("score_stage1", (False, True), (0.5, 0.0))
    assert (two.name, two.pg, two.kl) == ("score_stage2", (True, True), (0.0, 0.0))
    assert one.returns(1.0, 0.0) == 0.0 and one.returns(None, 1.0) == 1.0
    assert two.returns(0.0, 1.0) == 1.0 + 2.0 and two.returns(1.0, 0.0) == 1.0 - 2.0
    assert two.returns(1.0, None) is None
    # stage II credits each attempt with its own reward: a wrong first answer never pays
    assert two.credits(0.0, 1.0) == (0.0, 1.0 + 2.0) and two.credits(1.0, 1.0) == (1.0, 1.0)
    assert one.credits(1.0, 0.0) == (0.0, 0.0)
    traj = config_from_dict({**raw, "rl": {**raw["rl"], "score": {"credit": "trajectory"}}})
    assert recipe_for(traj.rl, traj.train.stages, 1).credits(0.0, 1.0) == (11.0, 11.0)
    # stage II can keep holding attempt 1 (stage2_t1_kl); stage I is unchanged by it
    held = {**raw["rl"], "score": {**raw["rl"]["score"], "stage2_t1_kl": 0.5}}
    held = config_from_dict({**raw, "rl": held})
    held1, held2 = (recipe_for(held.rl, held.train.stages, i) for i in (0, 1))
    assert held1 == one and held2.kl == (0.5, 0.0) and held2.pg == (True, True)
    with pytest.raises(ValueError, match="two rl stages"):
        config_from_dict(
            {**raw, "train": {**raw["train"], "steps": 2, "stages": [{"name": "a", "kind": "rl"}]}}
        )
    with pytest.raises(ValueError, match="attempts: 2"):
        config_from_dict(_rl_raw(recipe="score_stage1"))

    # two attempts need a longer context than the tiny run packs: the same model, 256 positions
    tok = load_tokenizer(str(tiny_data["packed"] / "tokenizer.json"))
    torch.manual_seed(0)
    m = build_model(
        {
            "model": tiny_config().model.model_dump(mode="json"),
            "vocab_size": tok.get_vocab_size(),
            "max_seq_len": 256,
            "image_size": 32,
        }
    )
    info = DistInfo()
    rl = RLStep(cfg, m, tok, torch.device("cpu"), info, tiny_data["packed"])
    calls = []
    for stage in (0, 1):
        rl.begin(stage, None)
        rl.rl.updates = stage + 1  # stage II: two updates on one batch (PPO-style clipping)
        before = {k: v.clone() for k, v in m.state_dict().items()}
        loss, rec = rl.run(stage, m, contextlib.nullcontext, lambda s=stage: calls.append(s))
        assert rec["rl_recipe"] == (one.name if stage == 0 else two.name)
        for k in ("acc_t1", "acc_t2", "kl_t1", "kl_t2", "response_len_t2", "reward"):
            assert rec[k] is not None, k
        grads = [p.grad for p in m.parameters() if p.grad is not None]
        assert grads  # a backward ran; the loop's optimizer step would apply it
        m.zero_grad()
        assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert calls == [1]  # the first of two updates is applied inside; the last by the loop


@pytest.mark.slow
def test_rl_stage_under_torchrun_two_ranks(tiny_data, tmp_path):
    """Two CPU ranks (gloo) each roll out half of a step's questions; one metrics line per
    step with everyone's figures, and a final checkpoint."""
    import os
    import subprocess
    import sys

    import yaml

    raw = _rl_raw()
    raw["rl"]["prompts_per_step"] = 4
    cfg = tmp_path / "rl.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "vloom", "train", str(tiny_data["packed"]), "--out", str(out),
        "--config", str(cfg), "--quiet",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    # every rank's rollouts are in the figures: 4 questions x 3 samples a step
    assert all(abs(x["acc_t1"] * 12 - round(x["acc_t1"] * 12)) < 1e-3 for x in lines)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["rl"]["b"]["steps"] == 2


def test_vloom_run_pretrain_then_rl(tiny_data, tmp_path):
    """`vloom run`'s chain with a pretrain stage then an rl stage: the rl stage reads the world
    beside the packed data, its reference is the pretrained weights, results.json summarises it."""
    from vloom.pipeline import run_experiment

    raw = _rl_raw()
    raw["train"]["stages"] = [
        {"name": "pre", "kind": "pretrain", "steps": 2},
        {"name": "rl", "kind": "rl", "steps": 2},
    ]
    raw["eval"].update(tasks=["vqa_open"], max_examples=4)
    run = tmp_path / "run"
    for part in ("synth", "curated", "packed"):  # the data stages are done: reuse them
        shutil.copytree(tiny_data[part], run / part)
    run_experiment(config_from_dict(raw), run, quiet=True)
    res = json.loads((run / "results.json").read_text())
    assert res["train"]["rl"]["rl"]["steps"] == 2 and "vqa_open" in res["eval"]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [("reward" in x) for x in lines] == [False, False, True, True]
    assert lines[2]["kl"] == 0.0  # the rl stage starts at its reference
    assert (run / "checkpoints" / "stage-pre").is_dir()
