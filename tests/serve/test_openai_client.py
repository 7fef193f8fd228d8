"""The official `openai` Python client against `vloom serve` on 127.0.0.1: chat completions
with an image, the model list, and errors raised as the client's own exception types."""

from __future__ import annotations

import pytest
from tinyserve import data_url, png, post

openai = pytest.importorskip("openai", reason="the openai client (dev extra) is not installed")


@pytest.fixture
def client(served):
    c = openai.OpenAI(base_url=served.url, api_key="unused", max_retries=0, timeout=60)
    yield c
    c.close()


def test_openai_client_chat_with_an_image(client, served):
    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_url(png()), "detail": "low"}},
                {"type": "text", "text": "What colour?"},
            ],
        }
    ]
    r = client.chat.completions.create(
        model="vloom", messages=msgs, temperature=0, max_tokens=8, seed=1, n=2
    )
    status, raw = post(
        served.url + "/chat/completions",
        {"model": "vloom", "messages": msgs, "temperature": 0, "max_tokens": 8},
    )
    assert status == 200
    assert [c.message.content for c in r.choices] == [raw["choices"][0]["message"]["content"]] * 2
    assert r.choices[0].finish_reason in ("stop", "length") and r.usage.prompt_tokens > 0
    assert [m.id for m in client.models.list()] == ["vloom"]


def test_openai_client_raises_its_own_errors(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="vloom", messages=[{"role": "user", "content": "word " * 200}], max_tokens=4
        )
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError, match="only data: URLs"):
        client.chat.completions.create(
            model="vloom",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                    ],
                }
            ],
        )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
