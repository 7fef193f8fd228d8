"""torchrun data parallelism on CPU (gloo, 2 processes) against one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tinyexp import tiny_raw

from vloom.config import load_config
from vloom.train import train
from vloom.train.distributed import check_world

# 8 sequences a step (4 x 2 accumulation); images enter at step 2, at ratio 0.5, so some
# steps put image rows on one rank only (the blank-image row path).
RAW = tiny_raw(
    train__steps=6,
    train__batch_size=4,
    train__grad_accum=2,
    train__checkpoint_every=3,
    train__log_every=1,
    train__image_text_ratio=0.5,
)
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")


def _write_cfg(path, **train):
    raw = json.loads(json.dumps(RAW))
    raw["train"].update(train)
    path.write_text(yaml.safe_dump(raw))
    return path


def _train(packed, out, cfg, nproc=1):
    if nproc == 1:  # in this process: the same code path as `vloom train` without torchrun
        return train(load_config(cfg), packed, out, quiet=True)
    launch = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc}", "-m", "vloom",
    ]  # fmt: skip
    cmd = [*launch, "train", str(packed), "--out", str(out), "--config", str(cfg), "--quiet"]
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def _losses(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_same_weights(a_run, b_run, atol=1e-5):
    a = load_file(str(a_run / "checkpoints" / "final" / "model.safetensors"))
    b = load_file(str(b_run / "checkpoints" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=k)


@pytest.fixture(scope="module")
def one_rank(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("dp")
    cfg = _write_cfg(root / "cfg.yaml")
    _train(tiny_data["packed"], root / "one", cfg)
    return root


def test_two_ranks_match_one_and_resume_on_one(tiny_data, one_rank):
    two = one_rank / "two"
    s = _train(tiny_data["packed"], two, one_rank / "cfg.yaml", nproc=2)
    assert s["world_size"] == 2 and s["parallel"] == "ddp"
    ref, got = _losses(one_rank / "one"), _losses(two)
    assert [r["step"] for r in got] == [r["step"] for r in ref]
    for r, g in zip(ref, got, strict=True):
        assert g["loss"] == pytest.approx(r["loss"], rel=1e-5), (r, g)
        assert g["image_frac"] == r["image_frac"] and g["tokens"] == r["tokens"]
    # the recipe exercised a step where only some rows carry images
    assert any(0 < r["image_frac"] < 1 for r in ref)
    _assert_same_weights(one_rank / "one", two)

    # A 2-rank checkpoint resumes on 1 rank: the data position in state.json is global.
    resumed = one_rank / "two-then-one"
    shutil.copytree(two, resumed)
    shutil.rmtree(resumed / "checkpoints" / "final")
    (resumed / "train_summary.json").unlink()
    s = _train(tiny_data["packed"], resumed, one_rank / "cfg.yaml")
    assert s["resumed_from"].endswith("step-000003") and s["world_size"] == 1
    _assert_same_weights(one_rank / "one", resumed)


@pytest.mark.slow
def test_fsdp_two_ranks_match_one_and_resume_a_one_rank_checkpoint(tiny_data, one_rank):
    cfg = _write_cfg(one_rank / "fsdp.yaml", parallel="fsdp")
    two = one_rank / "fsdp"
    s = _train(tiny_data["packed"], two, cfg, nproc=2)
    assert s["parallel"] == "fsdp"
    for r, g in zip(_losses(one_rank / "one"), _losses(two), strict=True):
        assert g["loss"] == pytest.approx(r["loss"], rel=1e-5)
    _assert_same_weights(one_rank / "one", two)
    # the FSDP run's checkpoints are plain full-weight files: they look like a 1-rank run's
    a = load_file(str(one_rank / "one" / "checkpoints" / "step-000003" / "optimizer.safetensors"))
    b = load_file(str(two / "checkpoints" / "step-000003" / "optimizer.safetensors"))
    assert a.keys() == b.keys()

    # ...and a 1-rank checkpoint resumes sharded on 2 ranks.
    resumed = one_rank / "one-then-fsdp"
    shutil.copytree(one_rank / "one", resumed)
    shutil.rmtree(resumed / "checkpoints" / "final")
    (resumed / "train_summary.json").unlink()
    s = _train(tiny_data["packed"], resumed, cfg, nproc=2)
    assert s["resumed_from"].endswith("step-000003")
    _assert_same_weights(one_rank / "one", resumed)


def test_world_size_that_does_not_divide_the_batch_is_an_error():
    check_world(4, 2, 2)
    with pytest.raises(ValueError, match=r"4 x 2 = 8 .* not divisible by the world size 3"):
        check_world(4, 2, 3)


@pytest.mark.slow
def test_a_three_stage_recipe_with_frozen_parts_matches_one_rank_under_ddp_and_fsdp(
    tiny_data, tmp_path
):
    """Qwen2-VL's shape: stages freeze different parts and mix different sources; ranks
    whose rows lack images still run the vision encoder (blank-image row)."""
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs/qwen2vl.yaml").read_text())
    raw["control"] = False
    raw["train"].update(steps=6, batch_size=4, threads=1, checkpoint_every=100, log_every=1)
    for parallel in ("ddp", "fsdp"):
        raw["train"]["parallel"] = parallel
        cfg = tmp_path / f"{parallel}.yaml"
        cfg.write_text(yaml.safe_dump(raw))
        if parallel == "ddp":
            _train(tiny_data["packed"], tmp_path / "one", cfg)
        _train(tiny_data["packed"], tmp_path / parallel, cfg, nproc=2)
        _assert_same_weights(tmp_path / "one", tmp_path / parallel)
