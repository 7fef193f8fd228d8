"""`vloom run` with an `sft` section: the SFT shards are built with the training tokenizer
(the checkpoint's for a run from `train.init_from`), the run resumes, bad conversations are
counted in the SFT ledger; pre-training rows packed with document masking train too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tinyexp import tiny_raw

from vloom.config import config_from_dict
from vloom.ondisk import read_json
from vloom.pipeline import checkpoint_packed_dir, run_experiment
from vloom.train import train
from vloom.train.batches import StepReader

SFT_SMALL = {
    "sources": [
        {
            "name": "world",
            "kind": "world",
            "counts": {"vqa": 48, "pointing": 8, "captions": 8, "multi_turn": 8},
        }
    ]
}
EVAL = {"tasks": ["vqa_open"], "max_examples": 8, "batch_size": 8}


def _sft_cfg(stages, steps=8, **kw):
    raw = tiny_raw(train__steps=steps, train__image_start_fraction=0.0, **kw)
    raw["train"]["stages"] = stages
    raw["sft"] = json.loads(json.dumps(SFT_SMALL))
    raw["eval"] = dict(EVAL)
    return raw


@pytest.fixture(scope="module")
def pretrain_then_sft(tmp_path_factory) -> Path:
    raw = _sft_cfg([{"name": "pretrain", "steps": 4}, {"name": "sft", "kind": "sft", "steps": 4}])
    run = tmp_path_factory.mktemp("sft") / "run"
    run_experiment(config_from_dict(raw), run, quiet=True)
    return run


def test_pretrain_then_sft_run_builds_sft_data_trains_and_evaluates(pretrain_then_sft):
    run = pretrain_then_sft
    stats = read_json(run / "sft" / "stats.json")
    packed = read_json(run / "packed" / "stats.json")
    assert stats["seq_len"] == packed["seq_len"] and stats["token_layout"] == packed["token_layout"]
    assert (run / "sft" / "tokenizer.json").read_bytes() == (
        run / "packed" / "tokenizer.json"
    ).read_bytes()
    # the tiny rows (64 tokens) cannot hold a dense caption: too_long, counted, not fatal
    ledger = read_json(run / "sft" / "ledger.json")
    assert ledger["input"] == 72 == stats["conversations"] + stats["rejected"]
    assert set(ledger["rejected"]) <= {"too_long"}
    stages = [json.loads(x)["stage"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert stages[:2] == ["pretrain", "pretrain"] and stages[-1] == "sft"
    assert "vqa_open" in read_json(run / "results.json")["eval"]
    state = read_json(run / "checkpoints" / "final" / "state.json")
    assert state["data"]["sft"]["cursor"] == 4 * 4  # four sft steps of four rows


def test_a_finished_run_is_skipped_when_run_again(pretrain_then_sft, capsys):
    raw = _sft_cfg([{"name": "pretrain", "steps": 4}, {"name": "sft", "kind": "sft", "steps": 4}])
    before = (pretrain_then_sft / "sft" / "stats.json").stat().st_mtime_ns
    run_experiment(config_from_dict(raw), pretrain_then_sft)
    out = capsys.readouterr().out
    assert "sft data: complete, skipped" in out and "train: complete, skipped" in out
    assert (pretrain_then_sft / "sft" / "stats.json").stat().st_mtime_ns == before


def test_sft_of_a_checkpoint_uses_its_tokenizer_and_packs_nothing(pretrain_then_sft, tmp_path):
    ckpt = pretrain_then_sft / "checkpoints" / "final"
    assert checkpoint_packed_dir(ckpt) == (pretrain_then_sft / "packed").resolve()
    raw = _sft_cfg([{"name": "sft", "kind": "sft"}], steps=3)
    raw["train"]["init_from"] = str(ckpt)
    raw["sft"]["sources"].append({"name": "chat", "kind": "chat", "path": str(_chat(tmp_path))})
    run = tmp_path / "run"
    run_experiment(config_from_dict(raw), run, quiet=True)
    assert not (run / "packed").exists() and not (run / "curated").exists()
    assert (run / "sft" / "tokenizer.json").read_bytes() == (
        pretrain_then_sft / "packed" / "tokenizer.json"
    ).read_bytes()
    world = read_json(pretrain_then_sft / "sft" / "ledger.json")  # same world, same seed
    ledger = read_json(run / "sft" / "ledger.json")
    assert ledger["input"] == world["input"] + 3 and ledger["kept"] == world["kept"] + 1
    bad = dict(ledger["rejected"])
    assert bad.pop("no_assistant_turn") == 1 and bad.pop("unknown_role") == 1
    assert bad == world["rejected"]
    assert read_json(run / "train_summary.json")["init_from"] == str(ckpt)
    assert "vqa_open" in read_json(run / "results.json")["eval"]


def _chat(tmp_path: Path) -> Path:
    """A chat file: one good conversation, one with no assistant turn, one unknown role."""
    rows = [
        {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hi."}]},
        {"messages": [{"role": "user", "content": "Nobody answers"}]},
        {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]},
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_checkpoint_without_its_packed_data_is_a_one_line_error(tmp_path):
    ck = tmp_path / "r" / "checkpoints" / "final"
    ck.mkdir(parents=True)
    (ck / "config.json").write_text(json.dumps({"tokenizer": str(tmp_path / "gone" / "t.json")}))
    with pytest.raises(FileNotFoundError, match="config.json: tokenizer .* hold no packed data"):
        checkpoint_packed_dir(ck)


def test_pretraining_rows_packed_with_document_masking_train_with_segments(tmp_path):
    from vloom.curate import run_curate
    from vloom.pack import run_pack
    from vloom.synth import generate

    # rows long enough that short documents (pairs, ~60 tokens) share one
    raw = tiny_raw(train__steps=2, pack__document_masking=True, pack__seq_len=192)
    cfg = config_from_dict(raw)
    generate(cfg.synth, tmp_path / "synth", cfg.seed)
    run_curate(tmp_path / "synth" / "train", tmp_path / "curated", cfg.curate, quiet=True)
    run_pack(tmp_path / "curated", tmp_path / "packed", cfg, quiet=True)
    reader = StepReader(tmp_path / "packed", cfg, [])
    m = reader.read(0).micros[0]
    assert m.segments is not None and m.segments.shape == m.inputs.shape
    assert int(m.segments.max()) >= 1  # rows hold several documents
    summary = train(cfg, tmp_path / "packed", tmp_path / "run", quiet=True)
    assert np.isfinite(summary["final_loss"])
