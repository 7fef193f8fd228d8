"""Generator policies a real model cannot be made to show on demand (invalid JSON, a schema
mismatch, refusals, 429s, a wrong item count): a scripted backend injects them. The real
backends are tested in test_generator_vloom.py / test_generator_hf.py."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from vloom.generate.generator import (
    REFUSAL,
    BackendError,
    Generator,
    GeneratorConfig,
    Request,
    extract_json,
    make_generator,
    request_key,
)


class Fact(BaseModel):
    subject: str
    count: int


class Scripted:
    """Answers each request from `script[prompt]`: a list of answers, one per call (the last
    repeats); an answer is a text or a BackendError; `short` drops the last item of a batch
    on the first call (a batching API that lost one)."""

    def __init__(self, script: dict[str, list], short: bool = False) -> None:
        self.script, self.short = script, short
        self.calls: list[list[Request]] = []
        self.seen: dict[str, int] = {}

    def identity(self) -> dict:
        return {"backend": "scripted", "script": sorted(self.script)}

    def generate(self, requests: list[Request]) -> list:
        self.calls.append(requests)
        out = []
        for r in requests:
            answers = self.script[r.prompt]
            k = self.seen.get(r.prompt, 0)
            self.seen[r.prompt] = k + 1
            out.append(answers[min(k, len(answers) - 1)])
        if self.short and len(self.calls) == 1:
            out = out[:-1]
        return out


GOOD = '{"subject": "circle", "count": 2}'


def test_structured_output_reasons_and_the_run_goes_on(tmp_path):
    be = Scripted(
        {
            "good": [f"Sure! ```json\n{GOOD}\n```"],
            "prose": ["There are two circles."],
            "wrong": ['{"subject": "circle", "count": "many"}'],
            "refuse": ["I'm sorry, but I can't help with that."],
            "sorry-json": ['{"subject": "sorry, a circle", "count": 1}'],
        }
    )
    g = Generator(be, cache_dir=tmp_path)
    reqs = [Request(prompt=p, schema=Fact) for p in be.script]
    got = g.generate(reqs)
    assert got[0].ok and got[0].value == Fact(subject="circle", count=2)
    assert [x.error for x in got[1:4]] == ["invalid_json", "schema_mismatch", "refused"]
    assert got[4].ok and got[4].value.count == 1  # JSON that says sorry is no refusal
    assert g.counts == {
        "generated": 2,
        "invalid_json": 1,
        "schema_mismatch": 1,
        "refused": 1,
    }
    # only the valid ones were cached: a rerun hits them and asks the backend for the rest
    g2 = Generator(be, cache_dir=tmp_path)
    again = g2.generate(reqs)
    assert [x.cached for x in again] == [True, False, False, False, True]
    assert [r.prompt for r in be.calls[-1]] == ["prose", "wrong", "refuse"]
    assert g2.counts["cache_hit"] == 2 and g2.counts["generated"] == 0


def test_transient_errors_retried_with_backoff_then_counted():
    be = Scripted(
        {
            "429-then-ok": [BackendError("rate_limited", "429"), "fine"],
            "always-down": [BackendError("endpoint_down", "refused connection")],
            "overflow": [BackendError("context_overflow", "too long")],
        }
    )
    g = Generator(be, retries=2, backoff_s=0.0)
    got = g.generate([Request(prompt=p) for p in be.script])
    assert got[0].text == "fine" and got[0].ok
    assert got[1].error == "endpoint_down" and got[2].error == "context_overflow"
    assert be.seen == {"429-then-ok": 2, "always-down": 3, "overflow": 1}  # overflow: no retry
    assert g.counts == {
        "generated": 1,
        "endpoint_down": 1,
        "context_overflow": 1,
        "retry:rate_limited": 1,
        "retry:endpoint_down": 2,
    }


def test_a_whole_batch_failure_and_a_wrong_count():
    class Down(Scripted):
        def generate(self, requests):
            raise BackendError("endpoint_down", "connection refused")

    g = Generator(Down({}), retries=1, backoff_s=0.0)
    got = g.generate([Request(prompt="a"), Request(prompt="b")])
    assert [x.error for x in got] == ["endpoint_down"] * 2
    assert g.counts == {"endpoint_down": 2, "retry:endpoint_down": 2}

    short = Scripted({"a": ["A"], "b": ["B"]}, short=True)
    g = Generator(short, retries=1, backoff_s=0.0)
    got = g.generate([Request(prompt="a"), Request(prompt="b")])
    assert [x.text for x in got] == ["A", "B"]  # the retry got both
    assert g.counts == {"generated": 2, "retry:count_mismatch": 2}
    g = Generator(Scripted({"a": ["A"], "b": ["B"]}, short=True), retries=0)
    assert [x.error for x in g.generate([Request(prompt="a"), Request(prompt="b")])] == [
        "count_mismatch"
    ] * 2


def test_a_backend_bug_is_backend_error_not_a_crash():
    class Buggy(Scripted):
        def generate(self, requests):
            raise KeyError("oops")

    g = Generator(Buggy({}))
    got = g.generate([Request(prompt="a")])
    assert got[0].error == "backend_error" and "oops" in got[0].message


def test_invalid_answer_retried_with_another_seed_and_cached_under_the_original(tmp_path):
    class BySeed(Scripted):
        def generate(self, requests):
            self.calls.append(requests)
            return [GOOD if r.seed != 7 else "no json here" for r in requests]

    be = BySeed({})
    req = Request(prompt="q", schema=Fact, seed=7)
    g = Generator(be, cache_dir=tmp_path, invalid_retries=1)
    got = g.generate([req])
    assert got[0].ok and got[0].value.subject == "circle"
    retry = be.calls[1][0]
    assert retry.seed != 7 and retry.temperature > 0  # greedy would only repeat itself
    assert g.counts == {"generated": 1, "retry:invalid_json": 1}
    g2 = Generator(be, cache_dir=tmp_path, invalid_retries=1)
    assert g2.generate([req])[0].cached and len(be.calls) == 2


def test_identical_requests_run_once_and_order_is_kept():
    be = Scripted({"a": ["A"], "b": ["B"]})
    g = Generator(be, batch_size=1, concurrency=2)
    got = g.generate([Request(prompt=p) for p in "abab"])
    assert [x.text for x in got] == ["A", "B", "A", "B"]
    assert sorted(r.prompt for c in be.calls for r in c) == ["a", "b"]
    assert g.counts == {"generated": 4}


def test_cache_key_covers_sampling_settings_schema_and_images():
    ident = {"backend": "x"}
    base = Request(prompt="p")
    keys = {
        request_key(ident, r)
        for r in [
            base,
            Request(prompt="p", temperature=0.5),
            Request(prompt="p", temperature=0.5, top_p=0.9),
            Request(prompt="p", temperature=0.5, seed=1),
            Request(prompt="p", max_new_tokens=7),
            Request(prompt="p", stop=("\n",)),
            Request(prompt="p", schema=Fact),
            Request(prompt="p", images=(b"\x89PNG...",)),
            Request(messages=(("system", "s"), ("user", "p"))),
        ]
    }
    assert len(keys) == 9
    assert request_key(ident, base) == request_key(ident, Request(messages=[("user", "p")]))
    assert request_key({"backend": "y"}, base) != request_key(ident, base)
    # greedy: the seed and top_p decide nothing, so they do not split the key
    greedy = {
        request_key(ident, Request(prompt="p", seed=s, top_p=t)) for s, t in [(0, 1), (5, 0.5)]
    }
    assert greedy == {request_key(ident, base)}


def test_request_and_config_errors_name_the_field():
    with pytest.raises(ValueError, match="last turn must be the user"):
        Request(messages=(("user", "q"), ("assistant", "a")))
    with pytest.raises(ValueError, match="role 'bot'"):
        Request(messages=(("bot", "q"),))
    with pytest.raises(ValueError, match="empty prompt"):
        Request(prompt="")
    with pytest.raises(ValueError, match="pydantic model"):
        Request(prompt="q", schema=dict)
    with pytest.raises(ValueError, match="batchsize"):
        GeneratorConfig.model_validate({"backend": "vloom", "batchsize": 3})
    with pytest.raises(ValueError, match="generator backend 'nope'"):
        make_generator({"backend": "nope"})
    with pytest.raises(ValueError, match="unknown reason"):
        BackendError("teapot")


def test_make_generator_plugin_backend(tmp_path):
    g = make_generator(
        {"backend": "test_generator_policy:Echo", "retries": 0, "batch_size": 2}, tmp_path
    )
    assert g.batch_size == 2 and g.retries == 0 and g.cache is not None
    assert g.generate([Request(prompt="hi")])[0].text == "hi"


class Echo:
    @classmethod
    def from_config(cls, cfg):
        return cls()

    def identity(self):
        return {"backend": "echo"}

    def generate(self, requests):
        return [r.prompt for r in requests]


@pytest.mark.parametrize(
    "text,refused",
    [
        ("I'm sorry, I can't do that.", True),
        ("I cannot help with this request.", True),
        ("  As an AI language model, I ...", True),
        ("Sorry, that is not possible.", True),
        ("The circle is red. I cannot see more.", False),
        ("Sorrel grows here.", False),
        ("Icannot", False),
        ("I cannotate the map.", False),
    ],
)
def test_refusal_detector(text, refused):
    assert bool(REFUSAL.match(text)) is refused


def test_extract_json():
    assert extract_json('x {"a": [1, {"b": 2}]} y {"c": 3}') == {"a": [1, {"b": 2}]}
    assert extract_json("{not json} then [1, 2]") == [1, 2]
    with pytest.raises(ValueError):
        extract_json("no braces")
    assert json.loads(GOOD) == extract_json(GOOD)


def test_a_corrupt_cache_entry_is_a_miss_and_is_rewritten(tmp_path):
    be = Scripted({"a": ["A"]})
    req = Request(prompt="a")
    g = Generator(be, cache_dir=tmp_path)
    g.generate([req])
    (entry,) = tmp_path.glob("??/*.json")
    entry.write_text('{"text": ')  # a half-written file from some other tool
    g2 = Generator(be, cache_dir=tmp_path)
    assert g2.generate([req])[0].text == "A" and g2.counts == {"generated": 1}
    assert json.loads(entry.read_text())["text"] == "A"
    assert Generator(be, cache_dir=tmp_path).generate([req])[0].cached
