"""`kind: sft` stages: rows from the SFT shards, loss on the loss-masked tokens only,
document masking from their segments, a pretrain -> sft recipe that resumes exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file, save_file
from tinyexp import tiny_raw

from vloom.config import config_from_dict
from vloom.pack.packing import PackedShardWriter
from vloom.sequence import DEFAULT_LAYOUT, IGNORE_INDEX
from vloom.train import train
from vloom.train.batches import StepReader, to_micro
from vloom.train.checkpoint import load_weights
from vloom.train.loop import build_model, read_packed_stats

L = DEFAULT_LAYOUT


def write_sft_dir(
    out: Path, stats: dict, n_rows: int = 24, seed: int = 0, drop: str | None = None
) -> Path:
    """SFT shards as the contract lays them out: PackedShardWriter's format plus loss_mask and
    segments. Each row packs 2-3 conversations `<bos> <image>? prompt | answer <eos>`, the
    answer and its eos marked, then padding (-1)."""
    rng = np.random.default_rng(seed)
    T, vocab, side = stats["seq_len"] + 1, stats["vocab_size"], stats["image_size"]
    k = stats["tokens_per_image"]
    out.mkdir(parents=True, exist_ok=True)
    w = PackedShardWriter(out, "sft", T, side, shard_rows=16, layout=L)
    masks, segs = [], []
    for r in range(n_rows):
        toks, mask, seg, images = [], [], [], []
        for c in range(int(rng.integers(2, 4))):
            img = r % 2 == 0 and c == 0
            prompt = [L.bos] + [L.image] * (k if img else 0)
            prompt += list(rng.integers(4, vocab, int(rng.integers(3, 8))))
            answer = [*rng.integers(4, vocab, int(rng.integers(2, 6))), L.eos]
            toks += prompt + answer
            mask += [0] * len(prompt) + [1] * len(answer)
            seg += [c] * (len(prompt) + len(answer))
            if img:
                images.append(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        n = T - len(toks)
        w.add_row(toks + [L.pad] * n, images, source="world/vqa")
        masks.append(mask + [0] * n)
        segs.append(seg + [-1] * n)
    w.flush()
    for i, path in enumerate(sorted(out.glob("sft-*.safetensors"))):
        t = load_file(str(path))
        rows = slice(16 * i, 16 * i + len(t["tokens"]))
        t["loss_mask"] = np.asarray(masks[rows], dtype=np.uint8)
        t["segments"] = np.asarray(segs[rows], dtype=np.int32)
        if drop:
            t.pop(drop)
        save_file(t, str(path))
    meta = {"seq_len": stats["seq_len"], "token_layout": stats["token_layout"]}
    (out / "stats.json").write_text(json.dumps({**meta, "image_size": side, "rows": n_rows}))
    return out


def _cfg(**kw):
    raw = tiny_raw(
        train__steps=6,
        train__log_every=1,
        train__image_start_fraction=0.0,
        train__stages=[{"name": "sft", "kind": "sft"}],
        **kw,
    )
    raw["sft"] = {}
    return config_from_dict(raw)


def test_targets_are_exactly_the_loss_masked_tokens(tiny_data, tmp_path):
    stats = read_packed_stats(tiny_data["packed"])
    sft = write_sft_dir(tmp_path / "sft", stats)
    reader = StepReader(
        tiny_data["packed"], _cfg(), [], sft_dir=sft, seq_len=stats["seq_len"], layout=L
    )
    rows = reader.streams["sft"].take(8)
    m = to_micro(rows, pin=False)
    mask = np.stack([r[2]["loss_mask"] for r in rows])[:, 1:]
    assert ((m.targets != IGNORE_INDEX).numpy() == (mask == 1)).all()
    assert m.n_tokens == int(mask.sum()) > 0
    want = np.stack([r[0] for r in rows])[:, 1:]
    assert (m.targets.numpy()[mask == 1] == want[mask == 1]).all()
    segs = np.stack([r[2]["segments"] for r in rows])[:, :-1]
    assert (m.segments.numpy() == segs).all()
    assert m.images is not None and len(m.images) == sum(len(r[1]) for r in rows)


def test_sft_run_trains_on_assistant_tokens_only(tiny_data, tmp_path):
    """The first step's logged loss is the cross-entropy over exactly the masked tokens of its
    batch, under the starting weights, with each conversation attending only to itself."""
    cfg = _cfg()
    pre = tmp_path / "pre"
    base = tiny_raw(train__steps=2, train__image_start_fraction=0.0)
    train(config_from_dict(base), tiny_data["packed"], pre, quiet=True)
    stats = read_packed_stats(tiny_data["packed"])
    sft = write_sft_dir(tmp_path / "sft", stats)
    cfg.train.init_from = str(pre / "checkpoints" / "final")
    run = tmp_path / "run"
    summary = train(cfg, tiny_data["packed"], run, quiet=True, sft_dir=sft)
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1 and first["stage"] == "sft"

    model = build_model(cfg, stats, pretrained=False)
    load_weights(model, cfg.train.init_from)
    reader = StepReader(
        tiny_data["packed"], cfg, [], sft_dir=sft, seq_len=stats["seq_len"], layout=model.layout
    )
    m = reader.read(0).micros[0]
    with torch.no_grad():
        logits, _ = model(m.inputs, m.images, segments=m.segments)
    keep = m.targets != IGNORE_INDEX
    want = F.cross_entropy(logits[keep].float(), m.targets[keep])
    assert first["loss"] == pytest.approx(want.item(), rel=1e-4)
    assert np.isfinite(summary["final_loss"])


def test_pretrain_then_sft_recipe_resumes_to_identical_weights(tiny_data, tmp_path):
    stats = read_packed_stats(tiny_data["packed"])
    sft = write_sft_dir(tmp_path / "sft", stats)
    raw = tiny_raw(
        train__steps=10,
        train__checkpoint_every=2,
        train__stages=[
            {"name": "pretrain", "steps": 4},
            {"name": "sft", "kind": "sft", "steps": 6, "lr": 1e-3, "warmup_steps": 1},
        ],
    )
    raw["sft"] = {}
    cfg = config_from_dict(raw)
    a, b = tmp_path / "a", tmp_path / "b"
    train(cfg, tiny_data["packed"], a, quiet=True, sft_dir=sft)
    stages = [json.loads(x)["stage"] for x in (a / "metrics.jsonl").read_text().splitlines()]
    assert stages[0] == "pretrain" and stages[-1] == "sft"
    train(cfg, tiny_data["packed"], b, quiet=True, sft_dir=sft)
    ck = b / "checkpoints"
    state = json.loads((ck / "step-000006" / "state.json").read_text())
    assert state["data"]["sft"]["cursor"] == 2 * 4  # two sft steps of 4 rows
    for name in ("final", "stage-sft", "step-000008"):  # killed after step 6's checkpoint
        shutil.rmtree(ck / name)
    (b / "train_summary.json").unlink()
    summary = train(cfg, tiny_data["packed"], b, quiet=True, sft_dir=sft)
    assert summary["resumed_from"].endswith("step-000006")
    wa = load_file(str(a / "checkpoints" / "final" / "model.safetensors"))
    wb = load_file(str(b / "checkpoints" / "final" / "model.safetensors"))
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_bad_sft_shards_are_one_line_errors(tiny_data, tmp_path):
    stats = read_packed_stats(tiny_data["packed"])
    cfg = _cfg()
    args = dict(seq_len=stats["seq_len"], layout=L)
    with pytest.raises(ValueError, match="sft-00000.safetensors: field 'loss_mask' is missing"):
        StepReader(
            tiny_data["packed"],
            cfg,
            [],
            sft_dir=write_sft_dir(tmp_path / "a", stats, drop="loss_mask"),
            **args,
        )
    with pytest.raises(FileNotFoundError, match="stats.json"):
        StepReader(tiny_data["packed"], cfg, [], sft_dir=tmp_path / "none", **args)
    long = write_sft_dir(tmp_path / "b", stats)
    (long / "stats.json").write_text(json.dumps({"seq_len": 4096, "token_layout": None}))
    with pytest.raises(ValueError, match="seq_len 4096 exceeds"):
        StepReader(tiny_data["packed"], cfg, [], sft_dir=long, **args)
    with pytest.raises(ValueError, match="sft_dir"):
        StepReader(tiny_data["packed"], cfg, [], **args)


def test_vloom_train_takes_the_sft_dir(tiny_data, tmp_path):
    import yaml

    from vloom.cli import main

    stats = read_packed_stats(tiny_data["packed"])
    sft = write_sft_dir(tmp_path / "sft", stats)
    raw = tiny_raw(train__steps=2, train__stages=[{"name": "sft", "kind": "sft"}])
    raw["sft"] = {}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    args = ["train", str(tiny_data["packed"]), "--out", str(out), "--quiet"]
    assert main([*args, "--config", str(tmp_path / "c.yaml"), "--sft-dir", str(sft)]) in (0, None)
    state = json.loads((out / "checkpoints" / "final" / "state.json").read_text())
    assert state["data"]["sft"]["cursor"] == 2 * 4
