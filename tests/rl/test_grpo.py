"""GRPO's pieces on real tensors and a real tiny model: group advantages, the batched
log-probabilities, KL to a frozen reference, and a policy that learns from its own samples."""

import pytest
import torch
from tinyexp import tiny_config

from vloom.evaluate.scoring import continuation_logprobs
from vloom.generate import sample
from vloom.model.io import build_model
from vloom.rl.grpo import group_advantages, kl_k3, policy_loss, token_logprobs
from vloom.rl.step import frozen_copy, load_reference
from vloom.sequence import load_tokenizer
from vloom.train.checkpoint import save_checkpoint


def _tiny(tok_path, d_model=32, seed=0):
    cfg = tiny_config(model__d_model=d_model)
    torch.manual_seed(seed)
    meta = {
        "model": cfg.model.model_dump(mode="json"),
        "vocab_size": load_tokenizer(str(tok_path)).get_vocab_size(),
        "max_seq_len": 96,
        "image_size": cfg.synth.image_size,
    }
    return build_model(meta)


def test_group_advantages():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 1.0, 5.0, 0.0, 3.0])
    valid = torch.tensor([True] * 8 + [True, False, True, True])
    a = group_advantages(r, valid, 4)
    assert torch.allclose(a[:4], torch.tensor([1.0, -1.0, -1.0, 1.0]), atol=1e-4)
    assert torch.all(a[4:8] == 0)  # all equal: nothing to learn
    assert a[9] == 0  # a skipped reward: no advantage, not in its group's statistics
    kept = torch.tensor([1.0, 0.0, 3.0])
    want = (kept - kept.mean()) / (kept.std(unbiased=False) + 1e-6)
    assert torch.allclose(a[[8, 10, 11]], want, atol=1e-5)


def test_logprobs_match_scoring_and_kl_is_zero_against_itself(tiny_data):
    tok_path = tiny_data["packed"] / "tokenizer.json"
    m = _tiny(tok_path).eval()
    prompts = [[1, 40, 41, 42], [1, 50], [1, 60, 61]]
    responses = [[7, 8], [9, 10, 11], [12]]
    logp, mask = token_logprobs(m, m, prompts, responses, [None] * 3, torch.device("cpu"))
    assert mask.tolist() == [[1, 1, 0], [1, 1, 1], [1, 0, 0]]
    want = continuation_logprobs(m, prompts, responses, [None] * 3, torch.device("cpu"))
    got = (logp * mask).sum(1)
    assert torch.allclose(got, torch.tensor(want), atol=1e-4)
    assert torch.all(kl_k3(logp, logp) == 0)
    assert torch.all(kl_k3(logp, logp - 0.3) > 0)


def test_reference_of_another_shape_is_refused(tiny_data, tmp_path):
    tok_path = tiny_data["packed"] / "tokenizer.json"
    m, other = _tiny(tok_path), _tiny(tok_path, d_model=48)
    save_checkpoint(tmp_path, "other", other, other.state_dict(), {}, {"step": 0})
    with pytest.raises(ValueError, match=r"^rl\.reference: .*other.*shape") as e:
        load_reference(m, tmp_path / "other", torch.device("cpu"))
    assert "\n" not in str(e.value)
    save_checkpoint(tmp_path, "same", m, m.state_dict(), {}, {"step": 0})
    ref = load_reference(m, tmp_path / "same", torch.device("cpu"))
    assert not any(p.requires_grad for p in ref.parameters())


def test_policy_learns_one_answer_and_kl_grows(tiny_data):
    """A tiny model is rewarded for answering with one of a few tokens: its reward rises over
    a few GRPO steps, and its KL to the frozen start is 0 at first, then grows."""
    torch.set_num_threads(1)
    tok_path = tiny_data["packed"] / "tokenizer.json"
    tok = load_tokenizer(str(tok_path))
    m = _tiny(tok_path)
    ref = frozen_copy(m, torch.device("cpu"))
    targets = set(range(20, 60))  # ~12% of the tiny vocabulary
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    prompt, G = [1, 70, 71, 72], 32
    rewards, kls = [], []
    for step in range(20):
        m.eval()
        got = sample(m, tok, [prompt] * G, [None] * G, torch.device("cpu"), max_new_tokens=1,
                     temperature=1.0, seed=step)  # fmt: skip
        m.train()
        resp = [s.tokens or [m.layout.eos] for s in got]
        r = torch.tensor([float(x[0] in targets) for x in resp])
        adv = group_advantages(r, torch.ones(G, dtype=torch.bool), G)
        logp, mask = token_logprobs(m, m, [prompt] * G, resp, [None] * G, torch.device("cpu"))
        with torch.no_grad():
            ref_logp, _ = token_logprobs(ref, ref, [prompt] * G, resp, [None] * G, "cpu")
        ones = torch.ones(G)
        loss, kl = policy_loss(logp, logp.detach(), ref_logp, adv, mask, ones, ones * 0.01,
                               0.2, float(mask.sum()))  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
        rewards.append(float(r.mean()))
        kls.append(float((kl * mask).sum() / mask.sum()))
    assert kls[0] == 0.0 and kls[-1] > 1e-3
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.3, rewards


def test_clipped_surrogate_stops_pushing_past_the_clip():
    """Several updates per batch: a token whose ratio already left [1 - clip, 1 + clip] in the
    advantage's direction gets no more policy gradient; inside, the gradient is -A."""
    old = torch.zeros(1, 3)
    logp = torch.tensor([[0.5, 0.05, -0.5]], requires_grad=True)  # ratios e^.5, e^.05, e^-.5
    zeros, ones = torch.zeros(1), torch.ones(1)
    loss, _ = policy_loss(logp, old, logp.detach(), ones, torch.ones(1, 3), ones, zeros, 0.2, 3.0)
    loss.backward()
    g = logp.grad[0]
    assert g[0] == 0  # A > 0 and ratio > 1.2: clipped
    assert g[1] < 0 and g[2] < 0  # inside the clip, or below it: still pushed up
