"""The generator through the vloom backend on a real (random) tiny checkpoint, and the hf
backend on the same weights exported for transformers."""

from __future__ import annotations

import random

import pytest
import yaml
from pydantic import BaseModel

from vloom.generate.backends.vloom import VloomBackend
from vloom.generate.generator import Generator, Request, make_generator
from vloom.synth.world import png_bytes, render, sample_scene


class Counted:
    """The real backend, with a count of the requests it was asked (to see cache hits)."""

    def __init__(self, inner) -> None:
        self.inner, self.asked = inner, 0

    def identity(self):
        return self.inner.identity()

    def generate(self, requests):
        self.asked += len(requests)
        return self.inner.generate(requests)


@pytest.fixture(scope="module")
def vloom_be(gen_ckpt) -> VloomBackend:
    return VloomBackend(gen_ckpt.ckpt, device="cpu", batch_size=4)


def scene_png(seed: int) -> bytes:
    return png_bytes(render(sample_scene(random.Random(seed)), 32))


QUESTIONS = ["What colour is the circle?", "How many objects are there?", "Where is the star?"]


def test_rerun_reuses_the_cache_without_calling_the_backend(vloom_be, tmp_path):
    reqs = [Request(prompt=q, max_new_tokens=6) for q in QUESTIONS]
    reqs.append(Request(prompt="Describe the figure.", images=(scene_png(0),), max_new_tokens=6))
    be = Counted(vloom_be)
    first = Generator(be, cache_dir=tmp_path).generate(reqs)
    assert be.asked == 4 and all(g.ok and not g.cached for g in first)
    again = Generator(be, cache_dir=tmp_path)
    second = again.generate(reqs)
    assert be.asked == 4  # not called the second time
    assert [g.text for g in second] == [g.text for g in first]
    assert all(g.cached for g in second) and again.counts == {"cache_hit": 4}


def test_seeded_sampling_is_reproducible_and_independent_of_the_batch(vloom_be):
    reqs = [
        Request(prompt=q, max_new_tokens=8, temperature=1.0, seed=s)
        for q in QUESTIONS[:2]
        for s in range(3)
    ]
    a = [g.text for g in Generator(vloom_be, batch_size=6).generate(reqs)]
    b = [g.text for g in Generator(vloom_be, batch_size=1).generate(reqs[::-1])][::-1]
    assert a == b
    assert len(set(a[:3])) > 1  # the seed matters: one question, three seeds, not one answer
    greedy = Generator(vloom_be).generate([Request(prompt=QUESTIONS[0], max_new_tokens=8)] * 2)
    assert greedy[0].text == greedy[1].text


def test_concurrent_batches_give_the_same_texts(vloom_be):
    reqs = [Request(prompt=q, max_new_tokens=5, seed=i) for i, q in enumerate(QUESTIONS * 2)]
    one = Generator(vloom_be, batch_size=2).generate(reqs)
    two = Generator(vloom_be, batch_size=2, concurrency=3).generate(reqs)
    assert [g.text for g in one] == [g.text for g in two]


def test_bad_input_is_counted_and_the_rest_answered(vloom_be):
    class Fact(BaseModel):
        colour: str

    reqs = [
        Request(prompt="circle " * 200, max_new_tokens=4),  # > the 128-token context
        Request(prompt=QUESTIONS[0], max_new_tokens=120),  # prompt + new > 128
        Request(prompt="Describe.", images=(b"not an image",), max_new_tokens=4),
        Request(prompt=QUESTIONS[0], max_new_tokens=6, schema=Fact),  # a random model: no JSON
        Request(prompt=QUESTIONS[1], max_new_tokens=4),
    ]
    g = Generator(vloom_be, retries=0)
    got = g.generate(reqs)
    assert [x.error for x in got] == [
        "context_overflow",
        "context_overflow",
        "backend_error",
        "invalid_json",
        None,
    ]
    assert "exceed the model's 128" in got[0].message
    assert g.counts == {
        "context_overflow": 2,
        "backend_error": 1,
        "invalid_json": 1,
        "generated": 1,
    }


def test_make_generator_from_yaml(gen_ckpt, tmp_path):
    spec = yaml.safe_load(
        f"backend: vloom\npath: {gen_ckpt.ckpt}\ndevice: cpu\nbatch_size: 2\nretries: 1\n"
    )
    g = make_generator(spec, tmp_path / "cache")
    assert g.batch_size == 2 and g.retries == 1
    assert g.generate([Request(prompt=QUESTIONS[0], max_new_tokens=3)])[0].ok
    ident = g.backend.identity()
    assert ident["backend"] == "vloom" and ident["template"] == "vloom"
    with pytest.raises(ValueError, match="generator.path"):
        make_generator({"backend": "vloom"})


def test_hf_backend_on_exported_weights_matches_the_vloom_backend(vloom_be, gen_ckpt):
    from vloom.generate.backends.hf import HFBackend

    hf = HFBackend(gen_ckpt.hf, template="vloom", device="cpu", batch_size=4)
    reqs = [Request(prompt=q, max_new_tokens=8) for q in QUESTIONS]
    reqs += [
        Request(prompt=q, max_new_tokens=8, temperature=0.8, top_p=0.9, seed=5) for q in QUESTIONS
    ]
    assert hf.prompt(reqs[0])[0] == vloom_be.prompt(reqs[0])[0]
    a = Generator(vloom_be).generate(reqs)
    b = Generator(hf).generate(reqs)
    assert [g.text for g in a] == [g.text for g in b]
    assert hf.identity() != vloom_be.identity()  # different backends: different cache keys
