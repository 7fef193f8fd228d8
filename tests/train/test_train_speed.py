"""Speed and memory options change how a step runs, never what it computes; MFU accounting."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tinyexp import tiny_config

from vloom.model.layers import swiglu_hidden
from vloom.train import train
from vloom.train.flops import flops_per_image, lm_flops_per_token
from vloom.train.loop import build_model, read_packed_stats


def _final(run):
    return load_file(str(run / "checkpoints" / "final" / "model.safetensors"))


def _same(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-5, msg=k)


def test_flops_per_token_counts_matmuls_output_layer_and_attention(tiny_data):
    cfg = tiny_config()
    stats = read_packed_stats(tiny_data["packed"])
    vlm = build_model(cfg, stats)
    d, L, V, T = cfg.model.d_model, cfg.model.n_layers, stats["vocab_size"], stats["seq_len"]
    h = swiglu_hidden(d, cfg.model.ffn_mult)
    per_layer = 4 * d * d + 3 * d * h  # q, k, v, o; gate, up, down (norm weights not counted)
    n = L * per_layer + V * d  # + output layer (tied, still a matmul)
    assert lm_flops_per_token(vlm, T) == 6 * n + 12 * L * d * T
    # one formula with the scaling laws, which count from the config without building a model
    from vloom.config import dump_config
    from vloom.scaling.flops import shape_from_config, train_flops_per_token

    shape = shape_from_config(dump_config(cfg), V)
    assert train_flops_per_token(shape)["total"] == lm_flops_per_token(vlm, T)
    v = cfg.model.vision
    p = (stats["image_size"] // v.patch_size) ** 2
    assert flops_per_image(vlm) > 6 * v.n_layers * (4 * v.d_model**2) * p  # at least the attn mats


def test_metrics_record_tokens_per_second_and_mfu(tiny_data, tmp_path):
    cfg = tiny_config(train__peak_flops=1e12, train__log_every=1, train__steps=3)
    train(cfg, tiny_data["packed"], tmp_path / "run", quiet=True)
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    vlm = build_model(cfg, read_packed_stats(tiny_data["packed"]))
    fpt = lm_flops_per_token(vlm, 64)
    for r in recs:
        assert r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1
        # MFU x peak = model FLOP/s >= the LM's share (images add to it)
        assert r["mfu"] * 1e12 >= 0.99 * r["tokens_per_s"] * fpt
    nopeak = tiny_config(train__steps=1)
    train(nopeak, tiny_data["packed"], tmp_path / "cpu", quiet=True)
    rec = json.loads((tmp_path / "cpu" / "metrics.jsonl").read_text().splitlines()[-1])
    assert rec["mfu"] is None  # no peak FLOP/s known for a CPU: not a made-up number


def test_activation_checkpointing_and_prefetch_do_not_change_the_result(tiny_data, tmp_path):
    base = tiny_config(train__grad_accum=2, train__batch_size=2)
    train(base, tiny_data["packed"], tmp_path / "base", quiet=True)
    ac = tiny_config(train__grad_accum=2, train__batch_size=2, train__activation_checkpointing=True)
    train(ac, tiny_data["packed"], tmp_path / "ac", quiet=True)
    _same(_final(tmp_path / "base"), _final(tmp_path / "ac"))
    inline = tiny_config(train__grad_accum=2, train__batch_size=2, train__prefetch=0)
    train(inline, tiny_data["packed"], tmp_path / "inline", quiet=True)
    _same(_final(tmp_path / "base"), _final(tmp_path / "inline"), atol=0)


@pytest.mark.slow
def test_torch_compile_trains_to_the_same_loss(tiny_data, tmp_path):
    """torch.compile works on this CPU but compiling takes minutes on 2 shared cores."""
    steps = {"train__steps": 3, "train__image_start_fraction": 0.0}
    s0 = train(tiny_config(**steps), tiny_data["packed"], tmp_path / "eager", quiet=True)
    s1 = train(
        tiny_config(**steps, train__compile=True), tiny_data["packed"], tmp_path / "c", quiet=True
    )
    assert s1["final_loss"] == pytest.approx(s0["final_loss"], rel=1e-4)
