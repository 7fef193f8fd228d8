"""The `http` backend: an OpenAI-compatible chat-completions endpoint (vLLM, SGLang, llama.cpp
server, TGI, `vloom serve`), through the standard library's http.client (no dependency).

A request becomes one POST {url}/chat/completions: its turns as messages, its images as
base64 data: URLs leading the first user turn (as the vloom backend places them), n = 1,
max_tokens, temperature, top_p, seed, stop; a schema request also sends response_format
(`json_object` by default: the widest support; `json_schema` sends the pydantic schema for
servers that constrain decoding to it; `none` sends nothing). The requests of one
`generate` call run `concurrency` at a time over a pool of keep-alive connections.

Failures, each a BackendError for its request only (the Generator retries the retryable):
- 429: rate_limited. The wait the server asks for (Retry-After, seconds or an HTTP date,
  capped at max_wait_s) is slept before the error is returned, so the retry comes after it.
- 5xx (a 503's Retry-After waited as a 429's), a refused or reset connection, an unknown
  host, a reply that is not HTTP: endpoint_down.
- no byte for timeout_s seconds (connect or read): timeout.
- 400 whose error says the prompt is over the context (`context_length_exceeded`, or the
  phrasing of vLLM, SGLang, llama.cpp, TGI): context_overflow.
- finish_reason `content_filter`, a `refusal` in the message, an error coded content_filter:
  refused.
- 401/403 (the key: named by its environment variable), other 4xx, a 200 that is not a chat
  completion: backend_error, not retried.
The API key is read from the environment variable `api_key_env` names (the config holds the
variable's name, never the key).
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import os
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from vloom.generate.generator import BackendError, GeneratorConfig, Request
from vloom.media import sniff_image

RESPONSE_FORMATS = ("json_object", "json_schema", "none")
# how endpoints word a prompt over the context (OpenAI's code; vLLM, SGLang, llama.cpp, TGI)
CONTEXT = re.compile(
    r"context_length_exceeded|maximum context length|context length|exceed_context_size|"
    r"exceeds the available context|must be <= \d+",
    re.IGNORECASE,
)


class HttpBackend:
    name = "http"

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        timeout_s: float = 120.0,
        concurrency: int = 8,
        api_key_env: str | None = None,
        response_format: str = "json_object",
        max_wait_s: float = 60.0,
        max_batch: int = 64,
    ) -> None:
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"generator.url: {url!r} is not an http(s) URL (http://host:port/v1)")
        if response_format not in RESPONSE_FORMATS:
            raise ValueError(
                f"generator.options.response_format: {response_format!r} is not one of "
                f"{RESPONSE_FORMATS}"
            )
        if concurrency < 1 or timeout_s <= 0 or max_wait_s < 0:
            raise ValueError("generator: need concurrency >= 1, timeout_s > 0, max_wait_s >= 0")
        self.url, self.model = url.rstrip("/"), model
        self.timeout_s, self.concurrency, self.max_batch = timeout_s, concurrency, max_batch
        self.response_format, self.max_wait_s = response_format, max_wait_s
        self.api_key_env = api_key_env
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(
                    f"generator.options.api_key_env: the environment variable {api_key_env} "
                    "is not set"
                )
            self._headers["Authorization"] = f"Bearer {key}"
        self._https, self._host, self._port = u.scheme == "https", u.hostname, u.port
        self._path = u.path.rstrip("/") + "/chat/completions"
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: GeneratorConfig) -> HttpBackend:
        """`{backend: http, url, model, timeout_s, options: {concurrency, api_key_env,
        response_format, max_wait_s}}`; a key written into the config is refused."""
        if not cfg.url:
            raise ValueError("generator.url: the http backend needs the endpoint's base URL")
        opts = dict(cfg.options)
        if "api_key" in opts:
            raise ValueError(
                "generator.options.api_key: never put a key in a config file; name the "
                "environment variable that holds it with options.api_key_env"
            )
        known = {"concurrency", "api_key_env", "response_format", "max_wait_s", "max_batch"}
        if extra := sorted(set(opts) - known):
            raise ValueError(
                f"generator.options: {extra} unknown to the http backend {sorted(known)}"
            )
        return cls(cfg.url, cfg.model, timeout_s=cfg.timeout_s, **opts)

    def identity(self) -> dict[str, Any]:
        """The endpoint and model name: all a remote model can be known by."""
        return {"backend": "http", "url": self.url, "model": self.model}

    def generate(self, requests: list[Request]) -> list[str | BackendError]:
        if len(requests) <= 1 or self.concurrency == 1:
            return [self._one(r) for r in requests]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="vloom-http")
        return list(self._pool.map(self._one, requests))

    def close(self) -> None:
        """Close idle connections and the worker threads (the backend can be used again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()
        while not self._idle.empty():
            self._idle.get_nowait().close()

    # -- one request ----------------------------------------------------------------------
    def _one(self, req: Request) -> str | BackendError:
        try:
            body = json.dumps(self.body(req)).encode()
        except BackendError as e:
            return e
        try:
            status, headers, data = self._post(body)
        except TimeoutError:
            return BackendError("timeout", f"{self.url}: no answer within {self.timeout_s:g} s")
        except (OSError, http.client.HTTPException) as e:  # refused, reset, DNS, not HTTP
            return BackendError("endpoint_down", f"{self.url}: {type(e).__name__}: {e}")
        if status == 200:
            return self._completion(data)
        return self._failure(status, headers, data)

    def body(self, req: Request) -> dict[str, Any]:
        """The chat-completions request body for `req`."""
        out: dict[str, Any] = {
            "messages": messages(req),
            "max_tokens": req.max_new_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "seed": req.seed,
            "n": 1,
        }
        if self.model is not None:
            out["model"] = self.model
        if req.stop:
            out["stop"] = list(req.stop)
        if req.schema is not None and self.response_format == "json_object":
            out["response_format"] = {"type": "json_object"}
        elif req.schema is not None and self.response_format == "json_schema":
            schema = {"name": req.schema.__name__, "schema": req.schema.model_json_schema()}
            out["response_format"] = {"type": "json_schema", "json_schema": schema}
        return out

    def _post(self, body: bytes) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One POST on a pooled keep-alive connection. A reused connection the server has
        meanwhile closed fails at once: the request is sent again on a fresh one."""
        while True:
            try:
                conn, reused = self._idle.get_nowait(), True
            except queue.Empty:
                conn, reused = self._connect(), False
            try:
                conn.request("POST", self._path, body, self._headers)
                r = conn.getresponse()
                data = r.read()
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                conn.close()
                if reused:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            if r.will_close:
                conn.close()
            else:
                self._idle.put(conn)
            return r.status, r.headers, data

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout_s)

    def _completion(self, data: bytes) -> str | BackendError:
        try:
            obj = json.loads(data)
            choice = obj["choices"][0]
            msg = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            return BackendError(
                "backend_error", f"{self.url}: a 200 that is not a chat completion: {data[:120]!r}"
            )
        if choice.get("finish_reason") == "content_filter" or msg.get("refusal"):
            return BackendError(
                "refused", str(msg.get("refusal") or "finish_reason content_filter")[:200]
            )
        content = msg.get("content")
        if not isinstance(content, str):
            return BackendError(
                "backend_error", f"{self.url}: message.content is {type(content).__name__}"
            )
        return content

    def _failure(self, status: int, headers: http.client.HTTPMessage, data: bytes) -> BackendError:
        text = error_text(data)
        where = f"{self.url}: HTTP {status}: {text}"
        if status == 429 or (status == 503 and headers.get("Retry-After")):
            wait = retry_after(headers.get("Retry-After"))
            if wait:
                time.sleep(min(wait, self.max_wait_s))
            return BackendError("rate_limited" if status == 429 else "endpoint_down", where)
        if status >= 500:
            return BackendError("endpoint_down", where)
        if status == 400 and CONTEXT.search(text):
            return BackendError("context_overflow", where)
        if "content_filter" in text:
            return BackendError("refused", where)
        if status in (401, 403):
            key = f"${self.api_key_env}" if self.api_key_env else "options.api_key_env (unset)"
            return BackendError("backend_error", f"{where} (the key comes from {key})")
        return BackendError("backend_error", where)


def messages(req: Request) -> list[dict[str, Any]]:
    """The request's turns as chat messages; its images, as data: URLs, lead the first user
    turn before its text (where the vloom backend puts them)."""
    out: list[dict[str, Any]] = []
    pending = list(req.images)
    for role, text in req.turns:
        if role == "user" and pending:
            parts = [
                {"type": "image_url", "image_url": {"url": data_url(b, k)}}
                for k, b in enumerate(pending)
            ]
            if text:
                parts.append({"type": "text", "text": text})
            out.append({"role": role, "content": parts})
            pending = []
        else:
            out.append({"role": role, "content": text})
    return out


def data_url(data: bytes, k: int = 0) -> str:
    """A base64 data: URL with the image's own media type."""
    fmt = sniff_image(data[:16])
    if fmt is None:
        raise BackendError(
            "backend_error", f"Request.images[{k}]: not a PNG, JPEG, GIF or WebP image"
        )
    return f"data:image/{fmt};base64,{base64.b64encode(data).decode('ascii')}"


def error_text(data: bytes) -> str:
    """An error body's words on one line: OpenAI's {error: {message, code, type}}, vLLM's
    {message, type, code}, or the raw start of anything else."""
    try:
        obj = json.loads(data)
    except ValueError:
        return data[:200].decode("utf-8", "replace").replace("\n", " ")
    err = obj.get("error", obj) if isinstance(obj, dict) else obj
    if isinstance(err, dict):
        bits = [str(err.get(k)) for k in ("code", "type", "message") if err.get(k) is not None]
        return " ".join(bits).replace("\n", " ")[:400]
    return str(err)[:200].replace("\n", " ")


def retry_after(value: str | None) -> float:
    """Seconds a Retry-After header asks for (a number or an HTTP date); 0 when absent/bad."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())
