"""The http generator backend against a real `vloom serve` on 127.0.0.1 (answers equal the vloom
backend's and vloom.generate.sample's; images as data URLs; a prompt over the context), and
against a small scripted loopback HTTP server for what a real model cannot be made to do on
demand (429 with Retry-After, 5xx, stalls, refusals, garbage), each counted by reason by the
Generator and retried where that makes sense. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from pydantic import BaseModel
from tinyserve import Served, free_port, make_checkpoint, png

from vloom.evaluate.tasks.data import image_input
from vloom.generate import sample
from vloom.generate.backends.http import HttpBackend
from vloom.generate.backends.vloom import VloomBackend
from vloom.generate.generator import Generator, GeneratorConfig, Request, make_generator
from vloom.sequence import BOS_ID, IMAGE_ID, encode_text
from vloom.train.denormal import flush_denormals

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("http_backend"))


@pytest.fixture(scope="module")
def served(ckpt):
    s = Served(ckpt, max_batch=8)
    yield s
    s.close()


@pytest.fixture(scope="module")
def local(ckpt):
    return VloomBackend(ckpt, device="cpu")


def requests_mix() -> list[Request]:
    red, blue = png((200, 30, 30)), png((30, 30, 200))
    return [
        Request(prompt="What colour is the circle?", max_new_tokens=8),
        Request(prompt="What colour?", images=(red,), max_new_tokens=8),
        Request(prompt="What colour?", images=(blue,), max_new_tokens=8),
        Request(
            messages=(
                ("system", "Be brief."),
                ("user", "Where?"),
                ("assistant", "Top."),
                ("user", "Sure?"),
            ),
            max_new_tokens=6,
            stop=("\n",),
        ),
        Request(
            prompt="Describe the scene.", temperature=0.9, top_p=0.95, seed=3, max_new_tokens=8
        ),
        Request(
            prompt="Describe the scene.", temperature=0.9, top_p=0.95, seed=4, max_new_tokens=8
        ),
    ]


def test_http_through_vloom_serve_equals_the_vloom_backend(served, local):
    """Same checkpoint, same requests: greedy, images, turns and seeded sampling give the
    same texts over HTTP as in process (one prompt builder, one sampling loop)."""
    reqs = requests_mix()
    http = HttpBackend(served.url, "vloom", timeout_s=60, concurrency=4)
    try:
        got = http.generate(reqs)
    finally:
        http.close()
    assert all(isinstance(t, str) for t in got), got
    assert got == local.generate(reqs)
    assert got[1] != got[2] or got[4] != got[5]  # images and seeds reach the model


def test_greedy_image_request_equals_sample_on_its_prompt(served, local):
    model, tok = local.model, local.tok
    img = png((30, 200, 30))
    http = HttpBackend(served.url, timeout_s=60)
    [text] = http.generate([Request(prompt="What shape?", images=(img,), max_new_tokens=10)])
    px, k = image_input(model, img)
    ids = [BOS_ID] + [IMAGE_ID] * k + encode_text(tok, "Question: What shape? Answer:")
    with flush_denormals(CPU):
        [want] = sample(model, tok, [ids], [px], CPU, max_new_tokens=10)
    assert text == want.text


def test_context_overflow_from_the_server_is_counted_not_retried(served):
    gen = make_generator({"backend": "http", "url": served.url, "model": "vloom", "backoff_s": 0})
    long = Request(prompt="word " * 200, max_new_tokens=4)
    fits = Request(prompt="Hi", max_new_tokens=200)  # room for the prompt, not for 200 more
    ok = Request(prompt="Hi", max_new_tokens=4)
    g = gen.generate([long, fits, ok])
    assert [x.error for x in g] == ["context_overflow", "context_overflow", None]
    assert "context_length_exceeded" in g[0].message
    assert gen.counts["context_overflow"] == 2 and gen.counts["generated"] == 1
    assert not any(k.startswith("retry:") for k in gen.counts)


def test_a_schema_request_over_http_sends_json_mode_and_is_validated(served):
    class Answer(BaseModel):
        colour: str

    gen = Generator(HttpBackend(served.url, timeout_s=60), backoff_s=0)
    [g] = gen.generate([Request(prompt="Colour? JSON.", max_new_tokens=6, schema=Answer)])
    # a random tiny model writes no JSON: counted as such, the run goes on
    assert g.error in ("invalid_json", "schema_mismatch", "refused") and g.text is not None
    assert gen.counts[g.error] == 1


# -- a scripted loopback server for the failures -------------------------------------------
def completion(text: str = "ok", finish: str = "stop", refusal: str | None = None) -> dict:
    msg = {"role": "assistant", "content": text, "refusal": refusal}
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
    }


class Scripted:
    """A real HTTP server on 127.0.0.1 whose k-th POST gets acts[k] (the last act repeats):
    (status, body, headers, delay_s). It records each request's arrival time, headers and
    JSON body."""

    def __init__(self, acts: list[tuple]) -> None:
        self.acts, self.seen, self.lock = acts, [], threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    k = len(outer.seen)
                    outer.seen.append((time.monotonic(), dict(self.headers), body))
                    act = outer.acts[min(k, len(outer.acts) - 1)]
                status, payload, headers, delay = (*act, None, 0)[:4]
                if callable(payload):
                    payload = payload(body)
                if delay:
                    time.sleep(delay)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for key, v in (headers or {}).items():
                        self.send_header(key, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/v1"

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def scripted():
    made = []

    def make(acts):
        made.append(Scripted(acts))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_429_waits_retry_after_then_succeeds_and_is_counted(scripted):
    s = scripted(
        [
            (429, {"error": {"message": "slow down"}}, {"Retry-After": "1"}),
            (200, completion("fine")),
        ]
    )
    gen = Generator(HttpBackend(s.url, "m", timeout_s=5), retries=3, backoff_s=0)
    [g] = gen.generate([Request(prompt="Hi")])
    assert (g.text, g.error) == ("fine", None)
    assert gen.counts["retry:rate_limited"] == 1 and gen.counts["generated"] == 1
    (t0, _, _), (t1, _, _) = s.seen
    assert t1 - t0 >= 0.9  # the retry came after the second the server asked for


def test_5xx_and_a_down_endpoint_are_endpoint_down_retried_then_given_up(scripted):
    s = scripted([(500, b"boom"), (502, b"bad gateway"), (200, completion("back"))])
    gen = Generator(HttpBackend(s.url, timeout_s=5), retries=3, backoff_s=0)
    assert gen.generate([Request(prompt="Hi")])[0].text == "back"
    assert gen.counts["retry:endpoint_down"] == 2
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    gen = Generator(HttpBackend(down, timeout_s=5), retries=2, backoff_s=0)
    g = gen.generate([Request(prompt="Hi"), Request(prompt="Ho")])
    assert [x.error for x in g] == ["endpoint_down"] * 2 and "ConnectionRefused" in g[0].message
    assert gen.counts["endpoint_down"] == 2 and gen.counts["retry:endpoint_down"] == 4


def test_a_stalled_endpoint_times_out_and_the_retry_succeeds(scripted):
    s = scripted([(200, completion("late"), {}, 2.0), (200, completion("on time"))])
    gen = Generator(HttpBackend(s.url, timeout_s=0.5), retries=1, backoff_s=0)
    [g] = gen.generate([Request(prompt="Hi")])
    assert g.text == "on time" and gen.counts["retry:timeout"] == 1
    s2 = scripted([(200, completion("late"), {}, 2.0)])
    gen = Generator(HttpBackend(s2.url, timeout_s=0.3), retries=0, backoff_s=0)
    assert gen.generate([Request(prompt="Hi")])[0].error == "timeout"


def test_refusals_unauthorized_garbage_and_bad_requests_are_named_not_retried(scripted):
    s = scripted(
        [
            (200, completion("", finish="content_filter")),
            (200, completion(None, refusal="I will not do that.")),
            (400, {"error": {"message": "flagged", "code": "content_filter"}}),
            (401, {"error": {"message": "bad key"}}),
            (200, b"<html>not json</html>"),
            (
                400,
                {
                    "object": "error",
                    "message": "This model's maximum context length is 2048 tokens.",
                },
            ),
            (422, {"error": {"message": "unprocessable"}}),
        ]
    )
    gen = Generator(
        HttpBackend(s.url, timeout_s=5), retries=3, backoff_s=0
    )  # one at a time: acts in order
    got = [gen.generate([Request(prompt=f"q{i}")])[0] for i in range(7)]
    assert [g.error for g in got] == [
        "refused",
        "refused",
        "refused",
        "backend_error",
        "backend_error",
        "context_overflow",
        "backend_error",
    ]
    assert "options.api_key_env" in got[3].message and "not a chat completion" in got[4].message
    assert not any(k.startswith("retry:") for k in gen.counts) and len(s.seen) == 7
    assert gen.counts["refused"] == 3 and gen.counts["backend_error"] == 3


def test_requests_run_concurrently_with_images_as_data_urls_and_the_key_from_env(
    scripted, monkeypatch
):
    """Four requests must be in flight at once to pass the server's barrier; each body carries
    its image as a data: URL before the text, and the key arrives from the named variable."""
    barrier = threading.Barrier(4, timeout=20)

    def answer(body):
        barrier.wait()
        parts = body["messages"][0]["content"]
        img = base64.b64decode(parts[0]["image_url"]["url"].split(",", 1)[1])
        return completion(f"{parts[1]['text']}:{len(img)}")

    s = scripted([(200, answer)])
    monkeypatch.setenv("VLOOM_TEST_KEY", "sk-test-123")
    cfg = {
        "backend": "http",
        "url": s.url,
        "model": "m",
        "options": {"concurrency": 4, "api_key_env": "VLOOM_TEST_KEY"},
    }
    gen = make_generator(cfg)
    imgs = [png((i * 50, 0, 0)) for i in range(4)]
    got = gen.generate([Request(prompt=f"p{i}", images=(imgs[i],)) for i in range(4)])
    assert [g.text for g in got] == [f"p{i}:{len(imgs[i])}" for i in range(4)]
    assert {h["Authorization"] for _, h, _ in s.seen} == {"Bearer sk-test-123"}
    assert all(
        b["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
        for _, _, b in s.seen
    )
    assert {b["model"] for _, _, b in s.seen} == {"m"}


def test_a_rerun_reuses_the_cache_and_the_endpoint_is_not_called(scripted, tmp_path):
    s = scripted(
        [(429, {"error": {"message": "busy"}}, {"Retry-After": "0"}), (200, completion("kept"))]
    )
    spec = {"backend": "http", "url": s.url, "model": "m", "backoff_s": 0}
    first = make_generator(spec, tmp_path / "cache")
    assert first.generate([Request(prompt="Hi")])[0].text == "kept"
    again = make_generator(spec, tmp_path / "cache")
    g = again.generate([Request(prompt="Hi")])[0]
    assert g.text == "kept" and g.cached and again.counts["cache_hit"] == 1
    assert len(s.seen) == 2


def test_config_errors_name_the_field(monkeypatch):
    monkeypatch.delenv("VLOOM_NO_SUCH_KEY", raising=False)
    with pytest.raises(ValueError, match="VLOOM_NO_SUCH_KEY is not set"):
        make_generator(
            {
                "backend": "http",
                "url": "http://127.0.0.1:9/v1",
                "options": {"api_key_env": "VLOOM_NO_SUCH_KEY"},
            }
        )
    with pytest.raises(ValueError, match="options.api_key: never put a key"):
        make_generator(
            {"backend": "http", "url": "http://127.0.0.1:9/v1", "options": {"api_key": "sk-x"}}
        )
    with pytest.raises(ValueError, match="generator.url"):
        make_generator({"backend": "http", "url": "ftp://127.0.0.1/v1"})
    with pytest.raises(ValueError, match="generator.url"):
        HttpBackend.from_config(GeneratorConfig(backend="http"))
    assert HttpBackend("http://127.0.0.1:9/v1/", "m").identity() == {
        "backend": "http",
        "url": "http://127.0.0.1:9/v1",
        "model": "m",
    }
