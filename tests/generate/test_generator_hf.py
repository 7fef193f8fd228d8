"""The hf backend on a tiny random Llama saved with save_pretrained (nothing downloaded)."""

from __future__ import annotations

import pytest
import torch
from hflm import save_hf_lm

from vloom.generate.backends.hf import HFBackend
from vloom.generate.generator import Generator, Request, make_generator

PROMPTS = ["A red circle sits left of", "Two green triangles and", "a small photo of a cat"]
CHAT = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    path = tmp_path_factory.mktemp("hfllama")
    model, tok = save_hf_lm(path)
    return path, model, tok


@pytest.fixture(scope="module")
def chat_llama(tmp_path_factory):
    path = tmp_path_factory.mktemp("hfchat")
    _, tok = save_hf_lm(path)
    tok.chat_template = CHAT
    tok.save_pretrained(str(path))
    return path, tok


def test_greedy_matches_transformers_generate(llama):
    path, model, tok = llama
    be = HFBackend(path, device="cpu")
    assert be.template == "plain"
    got = Generator(be).generate([Request(prompt=p, max_new_tokens=10) for p in PROMPTS])
    for p, g in zip(PROMPTS, got, strict=True):
        ids = tok(p, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            mask = torch.ones_like(ids)  # (bos is id 0: a pad id 0 would mask it out)
            ref = model.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False)[0]
        new = ref[ids.shape[1] :].tolist()
        if tok.eos_token_id in new:
            new = new[: new.index(tok.eos_token_id)]
        assert g.ok and g.text == tok.decode(new).strip()


def test_sampling_seeded_batch_independent_and_cached(llama, tmp_path):
    path, _, _ = llama
    be = HFBackend(path, device="cpu", batch_size=8)
    reqs = [
        Request(prompt=p, max_new_tokens=8, temperature=1.0, seed=s)
        for p in PROMPTS
        for s in (1, 2)
    ]
    a = Generator(be, cache_dir=tmp_path).generate(reqs)
    b = Generator(HFBackend(path, device="cpu", batch_size=1)).generate(reqs[::-1])[::-1]
    assert [g.text for g in a] == [g.text for g in b]
    assert any(a[i].text != a[i + 1].text for i in range(0, len(a), 2))  # seeds differ
    again = Generator(be, cache_dir=tmp_path)
    assert all(g.cached for g in again.generate(reqs)) and again.counts == {"cache_hit": 6}


def test_padded_batches_answer_as_unpadded(llama):
    path, _, _ = llama
    reqs = [Request(prompt=p, max_new_tokens=6) for p in PROMPTS]
    plain = Generator(HFBackend(path, device="cpu")).generate(reqs)
    padded = Generator(make_generator({"backend": "hf", "path": str(path), "device": "cpu",
                                       "options": {"pad": True}}).backend).generate(reqs)  # fmt: skip
    assert [g.text for g in plain] == [g.text for g in padded]


def test_chat_template_and_bad_input(chat_llama, llama):
    path, tok = chat_llama
    be = HFBackend(path, device="cpu")
    assert be.template == "hf"
    req = Request(messages=(("system", "Be brief."), ("user", "a small photo")), max_new_tokens=4)
    text = tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a small photo"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert be.prompt(req)[0] == tok(text, add_special_tokens=False)["input_ids"]
    g = Generator(be, retries=0)
    got = g.generate(
        [
            req,
            Request(prompt="cat " * 200, max_new_tokens=4),  # > max_position_embeddings 128
            Request(prompt="describe", images=(b"\x89PNG",), max_new_tokens=4),  # text-only
        ]
    )
    assert [x.error for x in got] == [None, "context_overflow", "backend_error"]
    assert g.counts == {"generated": 1, "context_overflow": 1, "backend_error": 1}
    with pytest.raises(ValueError, match="no chat_template"):
        HFBackend(llama[0], template="hf", device="cpu")
