"""Hostile and malformed requests to `vloom serve`: each gets its status and a one-line
OpenAI-style error naming the field; nothing is fetched; the server answers normally after."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from tinyserve import LIMITS, Served, data_url, get, png, post

USER = [{"role": "user", "content": "Hi"}]


def image_msg(url):
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]


CASES = [  # (body, status, param, code)
    (b"{not json", 400, None, "invalid_json"),
    (b"\xff\xfe", 400, None, "invalid_json"),
    (b"[1, 2]", 400, None, "invalid_json"),
    ({}, 400, "messages", None),
    ({"messages": []}, 400, "messages", None),
    ({"messages": ["hi"]}, 400, "messages[0]", None),
    ({"messages": [{"role": "tool", "content": "x"}]}, 400, "messages[0].role", None),
    ({"messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content", None),
    (
        {"messages": [{"role": "user", "content": "a <image> b"}]},
        400,
        "messages[0].content",
        "invalid_content",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
        400,
        "messages[0].content[0].type",
        None,
    ),
    ({"messages": USER + [{"role": "assistant", "content": "x"}]}, 400, "messages[1].role", None),
    (
        {"messages": image_msg("https://example.com/cat.png")},
        400,
        "messages[0].content[0].image_url.url",
        "invalid_image_url",
    ),
    (
        {"messages": image_msg("http://127.0.0.1:1/x.png")},
        400,
        "messages[0].content[0].image_url.url",
        "invalid_image_url",
    ),
    (
        {"messages": image_msg("file:///etc/passwd")},
        400,
        "messages[0].content[0].image_url.url",
        "invalid_image_url",
    ),
    (
        {"messages": image_msg("data:text/plain;base64,aGk=")},
        400,
        "messages[0].content[0].image_url.url",
        "invalid_image_url",
    ),
    (
        {"messages": image_msg("data:image/png,rawbytes")},
        400,
        "messages[0].content[0].image_url.url",
        "invalid_image_url",
    ),
    (
        {"messages": image_msg("data:image/png;base64,@@@@")},
        400,
        "messages[0].content[0].image_url.url",
        "invalid_image",
    ),
    (
        {"messages": image_msg(data_url(b"GIF89a" + b"\0" * 40))},
        400,
        "messages[0].content[0].image_url.url",
        "invalid_image",
    ),
    (
        {"messages": image_msg(data_url(b"hello, not an image"))},
        400,
        "messages[0].content[0].image_url.url",
        "invalid_image",
    ),
    (
        {"messages": image_msg(data_url(png(size=256)[:300]))},
        400,
        "messages[0].content[0].image_url.url",
        "invalid_image",
    ),
    (
        {"messages": image_msg(data_url(b"\x89PNG" + b"\0" * (20 << 10)))},
        400,
        "messages[0].content[0].image_url.url",
        "image_too_large",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": data_url(png())}}] * 4,
                }
            ]
        },
        400,
        "messages",
        None,
    ),
    (
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": [{"type": "image_url", "image_url": {"url": data_url(png())}}],
                },
                *USER,
            ]
        },
        400,
        "messages[0].content[0]",
        None,
    ),
    ({"messages": USER, "temperature": -1}, 400, "temperature", None),
    ({"messages": USER, "temperature": "hot"}, 400, "temperature", None),
    ({"messages": USER, "top_p": 0}, 400, "top_p", None),
    ({"messages": USER, "max_tokens": 0}, 400, "max_tokens", None),
    ({"messages": USER, "max_tokens": True}, 400, "max_tokens", None),
    ({"messages": USER, "n": 99}, 400, "n", None),
    ({"messages": USER, "seed": 1.5}, 400, "seed", None),
    ({"messages": USER, "stop": [1]}, 400, "stop", None),
    ({"messages": USER, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop", None),
    ({"messages": USER, "stream": True}, 400, "stream", None),
    ({"messages": USER, "response_format": {"type": "xml"}}, 400, "response_format", None),
    ({"messages": USER, "model": "gpt-4"}, 404, "model", "model_not_found"),
    (
        {"messages": [{"role": "user", "content": "word " * 200}]},
        400,
        "messages",
        "context_length_exceeded",
    ),
    ({"messages": USER, "max_tokens": 95}, 400, "messages", "context_length_exceeded"),
]


@pytest.mark.parametrize("body,status,param,code", CASES)
def test_bad_request_is_a_one_line_error_naming_the_field(served, body, status, param, code):
    got, ans = post(served.url + "/chat/completions", body)
    err = ans["error"]
    assert (got, err["param"], err["code"]) == (status, param, code), err
    assert "\n" not in err["message"] and err["message"]
    if param:
        assert err["message"].startswith(param + ":")
    assert set(err) == {"message", "type", "param", "code"}


def test_accepted_extras_and_the_server_still_answers(served):
    ok = {
        "messages": [{"role": "developer", "content": "Be brief."}, *USER],
        "response_format": {"type": "json_object"},
        "max_completion_tokens": 4,
        "temperature": 0,
        "top_k": -1,
        "user": "someone",
        "logprobs": False,
        "model": "vloom",
    }
    status, body = post(served.url + "/chat/completions", ok)
    assert status == 200 and body["usage"]["completion_tokens"] <= 4
    assert get(served.url.removesuffix("/v1") + "/health")[0] == 200


def raw(served, request: bytes) -> bytes:
    """Send raw bytes on a fresh connection; the whole answer."""
    host, port = urlsplit(served.url).hostname, urlsplit(served.url).port
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_body_over_the_cap_is_refused_unread(served):
    n = LIMITS.max_body_bytes + 1
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n\r\n"
    got = raw(served, head.encode() + b"{")  # the body never arrives: it is not waited for
    assert got.startswith(b"HTTP/1.1 413") and b"body_too_large" in got
    big = {"messages": [{"role": "user", "content": "x" * n}]}
    assert post(served.url + "/chat/completions", big)[0] == 413


def test_missing_length_truncated_body_and_unknown_routes(served):
    got = raw(served, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 411")
    chunked = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert raw(served, chunked + b"0\r\n\r\n").startswith(b"HTTP/1.1 411")
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    host, port = urlsplit(served.url).hostname, urlsplit(served.url).port
    with socket.create_connection((host, port), timeout=30) as s:  # 10 of 100 bytes, then gone
        s.sendall(head + b'{"messages')
        s.shutdown(socket.SHUT_WR)
        assert s.recv(65536).startswith(b"HTTP/1.1 400")
    assert get(served.url + "/nothing")[0] == 404
    assert get(served.url + "/chat/completions")[0] == 405
    assert post(served.url + "/completions", {"prompt": "x"})[0] == 404
    garbage = raw(served, b"\x16\x03\x01\x00garbage\r\n\r\n")  # a TLS hello, say
    assert b'"code": "bad_http_request"' in garbage  # JSON (no status line: not HTTP/1.x)


def test_keep_alive_connection_serves_requests_after_an_error(served):
    u = urlsplit(served.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        for body, want in [
            (b"{bad", 400),
            (b'{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}', 200),
        ] * 2:
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == want
    finally:
        conn.close()
    b64 = base64.b64encode(png()).decode()
    ok = image_msg(f"data:image/png;base64,{b64}")
    assert post(served.url + "/chat/completions", {"messages": ok, "max_tokens": 2})[0] == 200


def test_a_full_queue_is_a_503_with_retry_after(tiny_ckpt):
    s = Served(tiny_ckpt, max_pending=0)  # every request finds the queue full
    try:
        req = urllib.request.Request(
            s.url + "/chat/completions", json.dumps({"messages": USER}).encode()
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == 503 and e.value.headers["Retry-After"] == "1"
        assert json.loads(e.value.read())["error"]["code"] == "overloaded"
    finally:
        s.close()
