"""`vloom serve` on 127.0.0.1 over a tiny real checkpoint: answers equal vloom.generate.sample's
on the same prompt (text, images as data URLs, seeded sampling, several turns), concurrent
clients get what they would get alone, and the CLI starts a server."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import torch
from tinyserve import Served, data_url, get, png, post

from vloom.evaluate.tasks.data import image_input
from vloom.generate import sample
from vloom.sequence import BOS_ID, EOS_ID, IMAGE_ID, encode_text
from vloom.train.denormal import flush_denormals

CPU = torch.device("cpu")


def ref(reference, ids, images=None, n=1, **kw):
    model, tok = reference
    with flush_denormals(CPU):  # as the server's worker runs
        got = sample(model, tok, [ids] * n, [images] * n, CPU, **kw)
    return [(s.text, s.finished, len(s.tokens)) for s in got]


def answers(body):
    return [c["message"]["content"] for c in body["choices"]]


def chat(served, messages, **kw):
    status, body = post(served.url + "/chat/completions", {"messages": messages, **kw})
    assert status == 200, body
    return body


def test_greedy_text_equals_sample_on_the_templates_prompt(served, reference):
    _, tok = reference
    q = "What colour is the circle?"
    body = chat(served, [{"role": "user", "content": q}], temperature=0, max_tokens=12)
    want = ref(reference, [BOS_ID] + encode_text(tok, f"Question: {q} Answer:"), max_new_tokens=12)
    assert answers(body) == [want[0][0]]
    c = body["choices"][0]
    assert c["finish_reason"] == ("stop" if want[0][1] else "length")
    assert body["usage"]["prompt_tokens"] == 1 + len(encode_text(tok, f"Question: {q} Answer:"))
    assert body["usage"]["completion_tokens"] == want[0][2]
    assert body["object"] == "chat.completion" and body["model"] == "vloom"


def test_image_as_data_url_equals_sample_with_its_pixels(served, reference):
    model, tok = reference
    img = png((30, 30, 200))
    msg = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_url(img)}},
                {"type": "text", "text": "What colour?"},
            ],
        }
    ]
    body = chat(served, msg, temperature=0, max_tokens=10)
    px, k = image_input(model, img)
    ids = [BOS_ID] + [IMAGE_ID] * k + encode_text(tok, "Question: What colour? Answer:")
    assert answers(body) == [ref(reference, ids, px, max_new_tokens=10)[0][0]]
    # another image, another answer path: the pixels reach the model
    other = chat(
        served,
        [
            {
                **msg[0],
                "content": [
                    msg[0]["content"][0] | {"image_url": {"url": data_url(png((20, 200, 20)))}},
                    msg[0]["content"][1],
                ],
            }
        ],
        temperature=0,
        max_tokens=10,
    )
    px2, _ = image_input(model, png((20, 200, 20)))
    assert answers(other) == [ref(reference, ids, px2, max_new_tokens=10)[0][0]]


def test_turns_and_system_render_as_the_vloom_template(served, reference):
    _, tok = reference
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is it?"},
        {"role": "assistant", "content": "At the top."},
        {"role": "user", "content": [{"type": "text", "text": "Sure?"}]},
    ]
    body = chat(served, msgs, temperature=0, max_tokens=8, stop=["\n"])

    def enc(s):
        return encode_text(tok, s)

    ids = [BOS_ID] + enc("Be brief.") + enc("\n") + enc("Question: Where is it? Answer:")
    ids += enc(" At the top.") + [EOS_ID] + enc("Question: Sure? Answer:")
    assert answers(body) == [ref(reference, ids, max_new_tokens=8, stop=["\n"])[0][0]]


def test_seeded_sampling_n_choices_equal_sample_and_repeat(served, reference):
    _, tok = reference
    kw = {"temperature": 1.0, "top_p": 0.9, "seed": 7, "n": 3, "max_tokens": 8}
    msgs = [{"role": "user", "content": "Describe the scene."}]
    a, b = chat(served, msgs, **kw), chat(served, msgs, **kw)
    ids = [BOS_ID] + encode_text(tok, "Question: Describe the scene. Answer:")
    want = ref(reference, ids, n=3, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=7)
    assert answers(a) == answers(b) == [w[0] for w in want]
    assert len(set(answers(a))) > 1  # three draws, not one answer copied


def test_concurrent_clients_get_what_they_get_alone(served, reference):
    """Greedy and seeded requests in flight together (batched as they arrive) answer as each
    does alone; a seeded one-choice request equals sample(seed=s) on its prompt alone."""
    _, tok = reference
    qs = [f"Question number {i} about the {c} circle?" for i, c in enumerate(["red", "blue"] * 8)]
    kws = [
        {"temperature": 0} if i % 2 else {"temperature": 0.8, "seed": 100 + i} for i in range(16)
    ]

    def ask(i):
        msgs = [{"role": "user", "content": qs[i]}]
        return answers(chat(served, msgs, max_tokens=6, **kws[i]))

    alone = [ask(i) for i in range(16)]
    before = served.engine.stats["batches"]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(ask, range(16)))
    assert together == alone
    batches = served.engine.stats["batches"] - before
    print(f"16 concurrent requests ran in {batches} sampling calls")
    for i in (0, 2):
        ids = [BOS_ID] + encode_text(tok, f"Question: {qs[i]} Answer:")
        want = ref(reference, ids, max_new_tokens=6, temperature=0.8, seed=100 + i)
        assert alone[i] == [want[0][0]]


def test_models_and_health(served):
    assert get(served.url + "/models") == (
        200,
        {
            "object": "list",
            "data": [
                {
                    "id": "vloom",
                    "object": "model",
                    "created": 0,
                    "owned_by": "vloom",
                    "max_model_len": 96,
                }
            ],
        },
    )
    status, body = get(served.url.removesuffix("/v1") + "/health")
    assert status == 200 and body["status"] == "ok"


def test_cli_serves_on_a_free_port(tiny_ckpt):
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vloom",
            "serve",
            str(tiny_ckpt),
            "--port",
            "0",
            "--quiet",
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = p.stdout.readline()
        assert line.startswith("[vloom] serve: vloom on http://127.0.0.1:"), (
            line,
            p.stderr.read() if p.poll() is not None else "",
        )
        url = line.split(" on ")[1].split()[0]
        status, body = post(
            url + "/chat/completions",
            {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "temperature": 0},
        )
        assert status == 200 and len(body["choices"]) == 1
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_requests_arriving_together_share_one_sampling_call(tiny_ckpt):
    """With a batch window (generous here: the batch closes as soon as max_batch prompts are
    in), four concurrent greedy requests run as one `sample` call and answer as alone."""
    s = Served(tiny_ckpt, max_batch=4, batch_wait_s=5.0)
    try:
        qs = [f"Where is the {c} one?" for c in ("red", "blue", "green", "white")]

        def ask(q):
            msgs = [{"role": "user", "content": q}]
            return answers(chat(s, msgs, temperature=0, max_tokens=5))

        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(ask, qs))
        assert s.engine.stats["batches"] == 1 and s.engine.stats["requests"] == 4
        s.engine.batch_wait_s = 0.0
        assert [ask(q) for q in qs] == together
        assert s.engine.stats["batches"] == 5
    finally:
        s.close()
