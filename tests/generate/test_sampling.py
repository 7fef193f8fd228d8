"""vloom.generate.sample: greedy = a full-recompute argmax decode, cache = no cache, seeded
sampling, logprobs = a full forward's log_softmax, stops, and one-line errors."""

import copy

import pytest
import torch
import torch.nn.functional as F

from vloom.generate import cut_at_stop, sample
from vloom.sequence import BOS_ID, encode_text

CPU = torch.device("cpu")


def reference(model, prompt, image, n, stop=()):
    """One example, the whole prefix recomputed each step, argmax over allowed tokens."""
    ids, new, lps = list(prompt), [], []
    lay = model.layout
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids]), image)[0][0, -1].float()
            logp = F.log_softmax(logits, -1)
            logits[[lay.image, lay.pad]] = float("-inf")
            t = int(logits.argmax())
            if t == lay.eos:
                break
            new.append(t)
            lps.append(float(logp[t]))
            ids.append(t)
    return new, lps


def full_logprobs(model, prompt, image, tokens):
    """log p(tokens[j] | prompt + tokens[:j]) from one forward over the whole sequence."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + tokens]), image)[0][0].float()
    logp = F.log_softmax(logits[len(prompt) - 1 : -1], -1)
    return logp.gather(-1, torch.tensor(tokens)[:, None]).squeeze(-1)


def text_prompts(tok, texts):
    return [[BOS_ID] + encode_text(tok, t) for t in texts]


def image_prompt(m, tok, text="Question: what colour?"):
    torch.manual_seed(1)
    im = torch.randint(0, 256, (1, m.vision.image_size, m.vision.image_size, 3), dtype=torch.uint8)
    return [BOS_ID] + [m.layout.image] * m.tokens_per_image + encode_text(tok, text), im


def test_greedy_equals_a_full_recompute_argmax_with_and_without_cache(tiny_vlm):
    m, tok = tiny_vlm.model, tiny_vlm.tok
    prompts = text_prompts(tok, ["There is a", "There is b", "Question: What shape? Answer:"])
    ip, im = image_prompt(m, tok)
    prompts, images = prompts + [ip], [None, None, None, im]
    want = [reference(m, p, i, 8) for p, i in zip(prompts, images, strict=True)]
    for use_cache in (True, False):
        got = sample(m, tok, prompts, images, CPU, max_new_tokens=8, use_cache=use_cache)
        for s, (toks, lps) in zip(got, want, strict=True):
            assert s.tokens == toks and len(toks) > 0
            assert s.logprobs == pytest.approx(lps, abs=1e-4)
            assert s.text == tok.decode(toks).strip()
            assert s.finished == (len(toks) < 8)
    one = [
        sample(m, tok, [p], [i], CPU, max_new_tokens=8)[0].tokens
        for p, i in zip(prompts, images, strict=True)
    ]
    assert one == [w[0] for w in want]


def test_sampled_logprobs_are_the_untempered_full_forward_and_cache_agrees(tiny_vlm):
    m, tok = tiny_vlm.model, tiny_vlm.tok
    ip, im = image_prompt(m, tok)
    prompts = [ip] * 4 + text_prompts(tok, ["A red circle"]) * 2
    images = [im] * 4 + [None] * 2
    kw = dict(max_new_tokens=10, temperature=1.5, top_k=50, top_p=0.9, seed=3)
    cached = sample(m, tok, prompts, images, CPU, **kw)
    plain = sample(m, tok, prompts, images, CPU, use_cache=False, **kw)
    for a, b, p, i in zip(cached, plain, prompts, images, strict=True):
        assert a.tokens == b.tokens and len(a.tokens) > 0
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
        full = full_logprobs(m, p, i, a.tokens)
        assert a.logprobs == pytest.approx(full.tolist(), abs=1e-4)  # T=1.5 and filters aside


def test_seeded_sampling_is_reproducible_across_batch_sizes_and_varied(tiny_vlm):
    m, tok = tiny_vlm.model, tiny_vlm.tok
    g = 8  # an RL group: copies of one prompt
    prompts = text_prompts(tok, ["There is a"]) * g + text_prompts(tok, ["A blue"]) * 2
    images = [None] * len(prompts)
    kw = dict(max_new_tokens=8, temperature=1.0)
    a = sample(m, tok, prompts, images, CPU, seed=7, **kw)
    b = sample(m, tok, prompts, images, CPU, seed=7, batch_size=3, **kw)
    c = sample(m, tok, prompts, images, CPU, seed=8, **kw)
    assert [s.tokens for s in a] == [s.tokens for s in b]
    assert [s.tokens for s in a] != [s.tokens for s in c]
    assert len({tuple(s.tokens) for s in a[:g]}) >= g // 2  # the group's samples differ
    torch.manual_seed(5)
    d = sample(m, tok, prompts, images, CPU, **kw)  # seed None: from torch's generator
    torch.manual_seed(5)
    assert [s.tokens for s in d] == [s.tokens for s in sample(m, tok, prompts, images, CPU, **kw)]


def test_top_k_one_is_greedy_and_tiny_top_p_too(tiny_vlm):
    m, tok = tiny_vlm.model, tiny_vlm.tok
    prompts = text_prompts(tok, ["There is a", "Question: How many? Answer:"])
    greedy = sample(m, tok, prompts, [None, None], CPU, max_new_tokens=8)
    for kw in (dict(top_k=1), dict(top_p=1e-6)):
        got = sample(
            m, tok, prompts, [None, None], CPU, max_new_tokens=8, temperature=2.0, seed=1, **kw
        )
        assert [s.tokens for s in got] == [s.tokens for s in greedy]


def test_never_emits_placeholders_even_when_the_model_prefers_them(tiny_vlm):
    m, tok = copy.deepcopy(tiny_vlm.model), tiny_vlm.tok
    lay = m.layout
    torch.manual_seed(2)
    with torch.no_grad():  # other logits ~0, <image> and <pad> +-(h.v): one of them tops
        w = m.lm.lm_head.weight
        v = torch.randn(w.shape[1]) * 10
        w.mul_(1e-3)
        w[lay.image], w[lay.pad] = v, -v
    prompts = text_prompts(tok, ["There is a"]) * 6
    with torch.no_grad():
        top = m(torch.tensor(prompts[:1]))[0][0].argmax(-1)
    assert set(top.tolist()) <= {lay.image, lay.pad}
    for t in (0.0, 3.0):
        got = sample(m, tok, prompts, [None] * 6, CPU, max_new_tokens=10, temperature=t, seed=0)
        for s in got:
            assert lay.image not in s.tokens and lay.pad not in s.tokens
            assert len(s.tokens) == 10 or (t > 0 and s.finished)


def test_eos_ends_a_row_and_the_rest_of_the_batch_goes_on(tiny_vlm):
    m, tok = copy.deepcopy(tiny_vlm.model), tiny_vlm.tok
    lay = m.layout
    base = text_prompts(tok, ["There is a"])[0]
    prompts = [base[:-1] + [t] for t in (base[-1], 40, 41, 42)]  # one length: one batch
    first = sample(m, tok, prompts, [None] * 4, CPU, max_new_tokens=12)
    # eos takes over (scaled up) the lm_head row of a token one row emits mid-way
    t = first[0].tokens[3]
    with torch.no_grad():
        m.lm.lm_head.weight[lay.eos] = m.lm.lm_head.weight[t] * 1.5
    got = sample(m, tok, prompts, [None] * 4, CPU, max_new_tokens=12)
    assert any(s.finished and len(s.tokens) < 12 for s in got)
    assert any(len(s.tokens) > min(len(x.tokens) for x in got) for s in got)
    for s, p in zip(got, prompts, strict=True):
        toks, lps = reference(m, p, None, 12)
        assert s.tokens == toks and s.logprobs == pytest.approx(lps, abs=1e-4)
        assert s.finished == (len(toks) < 12) and lay.eos not in s.tokens


def test_stop_strings_cut_the_text_and_end_the_row(tiny_vlm):
    m, tok = tiny_vlm.model, tiny_vlm.tok
    prompts = text_prompts(tok, ["Question: What shape? Answer:"])
    full = sample(m, tok, prompts, [None], CPU, max_new_tokens=12)[0]
    text = tok.decode(full.tokens)
    stop = text.strip()[len(text.strip()) // 2]
    got = sample(m, tok, prompts, [None], CPU, max_new_tokens=12, stop=[stop, "never"])[0]
    assert got.finished and got.text == cut_at_stop(text, [stop]).strip() and stop not in got.text
    # the row ends at the first token whose text holds the stop string; it keeps that token
    n = next(k for k in range(1, 13) if stop in tok.decode(full.tokens[:k]))
    assert got.tokens == full.tokens[:n] and len(got.logprobs) == n


def test_prompt_rules_and_bad_inputs_are_one_line_errors(tiny_vlm):
    m, tok = tiny_vlm.model, tiny_vlm.tok
    limit = m.lm.max_seq_len
    ip, im = image_prompt(m, tok)
    long_text = text_prompts(tok, ["There is a red circle. " * 40])[0]
    assert len(long_text) > limit
    kept = long_text[len(long_text) - (limit - 6) :]  # a text prompt keeps its end
    assert sample(m, tok, [long_text], [None], CPU, max_new_tokens=6)[0].tokens == (
        sample(m, tok, [kept], [None], CPU, max_new_tokens=6)[0].tokens
    )
    bad = [
        (
            dict(prompts=[ip + [5] * limit], images=[im]),
            f"image prompt of .* exceeds the model's {limit}",
        ),
        (dict(max_new_tokens=limit), f"max_new_tokens must be in 1..{limit - 1}"),
        (dict(max_new_tokens=0), "max_new_tokens must be in 1.."),
        (dict(temperature=-1.0), "temperature=-1.0"),
        (dict(top_p=0.0), "top_p=0.0"),
        (dict(top_k=-2), "top_k=-2"),
        (dict(prompts=[[]], images=[None]), "prompt 0 is empty"),
        (dict(images=[None, None]), "1 prompts but 2 image entries"),
    ]
    for over, msg in bad:
        kw = dict(prompts=[ip], images=[im], max_new_tokens=4) | over
        with pytest.raises(ValueError, match=msg) as e:
            sample(m, tok, device=CPU, **kw)
        assert "\n" not in str(e.value)


def masked_probs(m, prompt, tokens, temperature):
    """The sampling distribution at each new position, from one full forward."""
    with torch.no_grad():
        logits = m(torch.tensor([prompt + tokens]))[0][0, len(prompt) - 1 :].float()
    logits[:, [m.layout.image, m.layout.pad]] = float("-inf")
    return torch.softmax(logits / temperature, -1)  # [n, V]


def test_sampled_frequencies_follow_the_tempered_distribution(tiny_vlm):
    m, tok = tiny_vlm.model, tiny_vlm.tok
    n, t = 3000, 0.1
    prompt = text_prompts(tok, ["There is a"])[0]
    got = sample(
        m, tok, [prompt] * n, [None] * n, CPU, max_new_tokens=1, temperature=t, seed=0, batch_size=n
    )
    first = torch.tensor([s.tokens[0] if s.tokens else m.layout.eos for s in got])
    p = masked_probs(m, prompt, [], t)[0]
    freq = torch.bincount(first, minlength=p.numel()).float() / n
    top = p.topk(5).indices
    assert p[top[0]] > 0.05  # a peaked enough distribution to test
    sd = (p[top] * (1 - p[top]) / n).sqrt()
    assert ((freq[top] - p[top]).abs() < 4 * sd + 1e-3).all(), (freq[top], p[top])


def test_top_k_and_top_p_keep_samples_inside_their_sets(tiny_vlm):
    m, tok = tiny_vlm.model, tiny_vlm.tok
    prompt = text_prompts(tok, ["Question: What shape? Answer:"])[0]
    for kw in (dict(top_k=3), dict(top_p=0.3), dict(top_k=5, top_p=0.5)):
        got = sample(
            m, tok, [prompt] * 12, [None] * 12, CPU, max_new_tokens=6, temperature=1.0, seed=4, **kw
        )
        assert len({tuple(s.tokens) for s in got}) > 1  # still sampling
        for s in got:
            probs = masked_probs(m, prompt, s.tokens, 1.0)[: len(s.tokens)]
            for row, tkn in zip(probs, s.tokens, strict=True):
                rank = int((row > row[tkn]).sum())  # tokens strictly more likely
                assert rank < kw.get("top_k", row.numel())
                before = float(row[row > row[tkn]].sum())
                assert before < kw.get("top_p", 1.0) + 1e-4


def test_a_group_of_copies_prefills_once_with_the_same_samples(tiny_vlm):
    m, tok = tiny_vlm.model, tiny_vlm.tok
    ip, im = image_prompt(m, tok)
    kw = dict(max_new_tokens=8, temperature=1.0, seed=11)
    shared = sample(m, tok, [ip] * 6, [im] * 6, CPU, **kw)  # one image object: one prefill row
    apart = sample(m, tok, [ip] * 6, [im.clone() for _ in range(6)], CPU, **kw)  # six rows
    assert [s.tokens for s in shared] == [s.tokens for s in apart]
    for a, b in zip(shared, apart, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    assert len({tuple(s.tokens) for s in shared}) > 1
