"""The OpenAI chat-completions wire format: a request body -> a checked `ChatRequest`, and the
response and error bodies. No model here: everything a hostile client can send is refused by
this module with a one-line `ApiError` that names the field (`messages[1].content[0]...`).

Accepted: `messages` (roles system / developer (= system) / user / assistant; content a string
or a list of `{type: text, text}` and `{type: image_url, image_url: {url: "data:image/...;
base64,..."}}` parts), `model`, `temperature`, `top_p`, `top_k` (vLLM's extension),
`max_tokens` / `max_completion_tokens`, `seed`, `stop`, `n`, `response_format` (`text`,
`json_object`, `json_schema`: accepted, not enforced: the model is not constrained).
Other OpenAI fields (`user`, `logprobs`, penalties...) are ignored; `stream: true` is refused.
Images come only as data: URLs: this server fetches no URL (an http(s) URL is a 400).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from PIL import Image

from vloom.chat.conversation import Turn
from vloom.media import ImageError, check_image, sniff_image
from vloom.sequence import IMAGE


@dataclass(frozen=True)
class Limits:
    """What one request may carry; the server's flags set them."""

    max_body_bytes: int = 32 << 20
    max_image_bytes: int = 8 << 20  # decoded
    max_image_pixels: int = 4096 * 4096
    max_images: int = 16
    max_messages: int = 512
    max_n: int = 16
    max_stop: int = 4


class ApiError(Exception):
    """An error response: HTTP status and OpenAI's error object (message, type, param, code)."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.param, self.code, self.type = status, param, code, type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        msg = str(self).replace("\n", " ")  # one line, whatever a field's text held
        return {
            "error": {"message": msg, "type": self.type, "param": self.param, "code": self.code}
        }


def bad(param: str, message: str, code: str | None = None) -> ApiError:
    """A 400 whose message starts with the field it is about."""
    return ApiError(400, f"{param}: {message}", param, code)


@dataclass(frozen=True)
class ChatRequest:
    """One checked request. max_tokens None: as many as the context leaves (capped by the
    server); temperature 0 is greedy."""

    turns: tuple[Turn, ...]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1

    @property
    def n_images(self) -> int:
        return sum(len(t.images) for t in self.turns)


ROLE_ALIASES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*),", re.ASCII)


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400."""
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ApiError(400, f"body: not valid JSON ({e})", None, "invalid_json") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "body: expected a JSON object", None, "invalid_json")
    return obj


def parse_chat(obj: dict[str, Any], limits: Limits) -> ChatRequest:
    """A chat-completions body (already a dict) -> ChatRequest, or ApiError(400) naming the
    first bad field."""
    if obj.get("stream"):
        raise bad("stream", "streaming is not supported; send stream: false")
    msgs = obj.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise bad("messages", "expected a non-empty list of messages")
    if len(msgs) > limits.max_messages:
        raise bad(
            "messages", f"{len(msgs)} messages, more than this server's {limits.max_messages}"
        )
    turns = tuple(_turn(m, f"messages[{i}]", limits) for i, m in enumerate(msgs))
    if turns[-1].role == "assistant":
        raise bad(f"messages[{len(msgs) - 1}].role", "the last message must not be the assistant's")
    n_img = sum(len(t.images) for t in turns)
    if n_img > limits.max_images:
        raise bad("messages", f"{n_img} images, more than this server's {limits.max_images}")
    model = obj.get("model")
    if model is not None and not isinstance(model, str):
        raise bad("model", "expected a string")
    _response_format(obj.get("response_format"))
    max_tokens = obj.get("max_completion_tokens", obj.get("max_tokens"))
    field = "max_completion_tokens" if "max_completion_tokens" in obj else "max_tokens"
    return ChatRequest(
        turns=turns,
        model=model,
        max_tokens=None if max_tokens is None else _int(max_tokens, field, lo=1),
        temperature=_num(obj.get("temperature", 1.0), "temperature", 0.0, 2.0),
        top_p=_num(obj.get("top_p", 1.0), "top_p", 0.0, 1.0, open_lo=True),
        top_k=_int(0 if obj.get("top_k") == -1 else obj.get("top_k", 0), "top_k", lo=0),  # -1: off
        seed=None if obj.get("seed") is None else _int(obj["seed"], "seed", -(2**63), 2**64 - 1),
        stop=_stop(obj.get("stop"), limits),
        n=_int(obj.get("n", 1), "n", 1, limits.max_n),
    )


def _turn(m: Any, where: str, limits: Limits) -> Turn:
    if not isinstance(m, dict):
        raise bad(where, "expected an object with role and content")
    role = m.get("role")
    if role not in ROLE_ALIASES:
        raise bad(f"{where}.role", f"{role!r} is not one of {sorted(ROLE_ALIASES)}")
    role = ROLE_ALIASES[role]
    content = m.get("content")
    if isinstance(content, str):
        parts: list[str | bytes] = [content]
    elif isinstance(content, list):
        parts = [_part(p, f"{where}.content[{k}]", limits) for k, p in enumerate(content)]
    else:
        raise bad(f"{where}.content", "expected a string or a list of content parts")
    for k, p in enumerate(parts):
        if isinstance(p, str) and IMAGE in p:  # it would encode to an image slot with no image
            raise bad(f"{where}.content", f"the text holds a literal {IMAGE}", "invalid_content")
        if isinstance(p, bytes) and role != "user":
            raise bad(f"{where}.content[{k}]", f"images go in user messages, not {role}")
    return Turn(role, tuple(parts))


def _part(p: Any, where: str, limits: Limits) -> str | bytes:
    if not isinstance(p, dict):
        raise bad(where, "expected a content part object with a type")
    kind = p.get("type")
    if kind == "text":
        if not isinstance(p.get("text"), str):
            raise bad(f"{where}.text", "expected a string")
        return p["text"]
    if kind == "image_url":
        iu = p.get("image_url")
        url = iu.get("url") if isinstance(iu, dict) else iu
        field = f"{where}.image_url.url" if isinstance(iu, dict) else f"{where}.image_url"
        if not isinstance(url, str):
            raise bad(field, "expected a data: URL string")
        return decode_data_url(url, field, limits)
    raise bad(f"{where}.type", f"{kind!r} is not a supported part type (text, image_url)")


def decode_data_url(url: str, field: str, limits: Limits) -> bytes:
    """The image bytes of a base64 data: URL, checked (size, pixels, that it decodes)."""
    m = _DATA_URL.match(url)
    if m is None:
        scheme = url.split(":", 1)[0][:16] if ":" in url else "no scheme"
        raise bad(
            field,
            f"only data: URLs are accepted (got {scheme}); this server fetches no URL",
            "invalid_image_url",
        )
    if m["mime"] and not m["mime"].lower().startswith("image/"):
        raise bad(field, f"media type {m['mime']} is not an image", "invalid_image_url")
    if "base64" not in m["params"].lower().split(";"):
        raise bad(
            field, "the data: URL must be base64 (data:image/png;base64,...)", "invalid_image_url"
        )
    b64 = url[m.end() :]
    if len(b64) * 3 // 4 > limits.max_image_bytes:
        raise bad(field, f"image over {limits.max_image_bytes} bytes", "image_too_large")
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise bad(field, "the data: URL's base64 does not decode", "invalid_image") from None
    check_decodable(data, field, limits)
    return data


def check_decodable(data: bytes, field: str, limits: Limits) -> None:
    """A 400 for bytes that are no image, too many pixels (read from the header, before any
    pixel is decoded) or do not decode."""
    if sniff_image(data[:16]) is None:
        raise bad(field, "the bytes are not a PNG, JPEG, GIF or WebP image", "invalid_image")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Exception as e:  # Pillow raises many kinds for a broken header
        raise bad(
            field, f"image header does not read ({type(e).__name__})", "invalid_image"
        ) from None
    if w * h > limits.max_image_pixels:
        raise bad(field, f"{w}x{h} image over {limits.max_image_pixels} pixels", "image_too_large")
    try:
        check_image(data)
    except ImageError as e:
        raise bad(field, f"image does not decode: {e}", "invalid_image") from None


def _response_format(rf: Any) -> None:
    if rf is None:
        return
    if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
        raise bad("response_format", "expected {type: text | json_object | json_schema}")


def _num(v: Any, field: str, lo: float, hi: float, open_lo: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
        raise bad(field, f"expected a number, got {json.dumps(v)[:40]}")
    if v < lo or v > hi or (open_lo and v == lo):
        span = f"({lo}, {hi}]" if open_lo else f"[{lo}, {hi}]"
        raise bad(field, f"{v} is outside {span}")
    return float(v)


def _int(v: Any, field: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise bad(field, f"expected an integer, got {json.dumps(v)[:40]}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise bad(field, f"{v} is outside [{lo}, {hi}]" if hi is not None else f"{v} < {lo}")
    return v


def _stop(v: Any, limits: Limits) -> tuple[str, ...]:
    if v is None:
        return ()
    stops = [v] if isinstance(v, str) else v
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad("stop", "expected a string or a list of strings")
    if len(stops) > limits.max_stop:
        raise bad("stop", f"{len(stops)} stop strings, more than {limits.max_stop}")
    return tuple(s for s in stops if s)


def completion_body(
    model: str, choices: list[tuple[str, bool]], prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    """A chat.completion object; choices are (text, finished) pairs (finished: eos or a stop
    string, not max_tokens)."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop" if done else "length",
                "logprobs": None,
            }
            for i, (text, done) in enumerate(choices)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def models_body(model: str, max_len: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": model,
                "object": "model",
                "created": 0,
                "owned_by": "vloom",
                "max_model_len": max_len,
            }
        ],
    }
