"""Denormal floats on CPU: vloom's LM trains without making them, and training flushes them on
every thread it computes on (a denormal in a matmul's input slows it several-fold)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from scriptmod import load_script
from tinyexp import tiny_config

from vloom.config import ModelConfig
from vloom.train import train
from vloom.train.denormal import flush_denormals, flushing

TINY = torch.finfo(torch.float32).tiny


def n_denormal(t: torch.Tensor) -> int:
    return int(((t != 0) & (t.abs() < TINY)).sum())


def threads_flush() -> bool:
    """Whether a matmul split over torch's threads flushes everywhere: 1e-20 squared is a
    denormal, so each thread's share of the product is zero only where that thread flushes."""
    a = torch.full((256, 256), 1e-20)
    return int((a @ a != 0).sum()) == 0


@pytest.fixture
def one_thread():
    """One torch thread (a tiny model gains nothing from more), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _bench_module():
    return load_script("benchmarks/train_throughput.py")


def test_benchmark_lm_trains_without_denormals(one_thread):
    """The benchmark's shape (d 128, vocab 2048) with torch's default init (embedding N(0, 1)
    tied to the head) put thousands of denormals into the logits' gradient from step 0 on;
    initialised as vloom initialises it, nothing in the step ever goes denormal."""
    torch.manual_seed(0)
    vocab = 2048
    lm = _bench_module().build_vloom(ModelConfig(d_model=128, n_layers=2, n_heads=4), vocab, 33)
    opt = torch.optim.AdamW(lm.parameters(), lr=3e-4, foreach=True)
    gen = torch.Generator().manual_seed(0)
    for step in range(12):
        tokens = torch.randint(0, vocab, (4, 33), generator=gen)
        logits = lm.forward_embeds(lm.embed_tokens(tokens[:, :-1]))
        logits.retain_grad()
        F.cross_entropy(logits.reshape(-1, vocab), tokens[:, 1:].reshape(-1)).backward()
        found = {"logits.grad": n_denormal(logits.grad)}
        found |= {f"{n}.grad": n_denormal(p.grad) for n, p in lm.named_parameters()}
        opt.step()
        opt.zero_grad(set_to_none=True)
        found |= {n: n_denormal(p) for n, p in lm.named_parameters()}
        for p in lm.parameters():
            found["exp_avg"] = found.get("exp_avg", 0) + n_denormal(opt.state[p]["exp_avg"])
            found["exp_avg_sq"] = found.get("exp_avg_sq", 0) + n_denormal(
                opt.state[p]["exp_avg_sq"]
            )
        assert not any(found.values()), (step, {k: v for k, v in found.items() if v})


def _adamw_on_rows_that_stop_learning(steps: int) -> tuple[int, int, int]:
    """Embedding rows 8.. get a gradient at step 0 only (tokens a corpus stops showing, an
    untied head's rare rows): AdamW's moments of those rows shrink by beta each step. Returns
    the denormal counts of exp_avg and exp_avg_sq and the size of each."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(64, 16)
    opt = torch.optim.AdamW(emb.parameters(), lr=1e-3, betas=(0.9, 0.95), foreach=True)
    for step in range(steps):
        ids = torch.arange(64) if step == 0 else torch.randint(0, 8, (32,))
        emb(ids).pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    st = opt.state[emb.weight]
    return n_denormal(st["exp_avg"]), n_denormal(st["exp_avg_sq"]), emb.weight.numel()


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU cannot flush denormals")
def test_optimizer_moments_of_idle_rows_reach_zero_under_flushing(one_thread):
    """Without flushing, 0.9 x the smallest denormals rounds back to themselves: the idle rows'
    moments go denormal after ~700 steps (exp_avg) and ~1,100 (exp_avg_sq) and stay there,
    and every step's sqrt and division read them."""
    with flush_denormals(torch.device("cpu")):
        assert _adamw_on_rows_that_stop_learning(1600) == (0, 0, 1024)
    assert _adamw_on_rows_that_stop_learning(1600) == (896, 896, 1024)  # the 56 idle rows


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU cannot flush denormals")
def test_training_on_cpu_flushes_denormals_on_every_thread(tiny_data, tmp_path):
    torch.set_num_threads(2)
    assert not flushing() and not threads_flush()  # the worker threads exist and keep denormals
    seen = []

    def look(module, args, out):
        if not seen:
            seen.append((flushing(), threads_flush(), torch.get_num_threads()))

    handle = torch.nn.modules.module.register_module_forward_hook(look)
    try:
        train(tiny_config(train__steps=2, train__threads=2), tiny_data["packed"], tmp_path / "r")
    finally:
        handle.remove()
    assert seen == [(True, True, 2)]
    assert not flushing() and not threads_flush()  # the previous mode is back afterwards


def test_flush_denormals_is_a_no_op_off_cpu():
    with flush_denormals(torch.device("meta")):
        assert not flushing()
