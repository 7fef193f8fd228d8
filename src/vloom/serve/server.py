"""The HTTP side of `vloom serve`: the standard library's ThreadingHTTPServer (no dependency),
one thread per connection, HTTP/1.1 keep-alive, JSON in and out.

Routes: POST /v1/chat/completions, GET /v1/models, GET /health (also without the /v1 prefix).
Every failure is an OpenAI-style error object with the status it names; a request the server
cannot parse never reaches the model, and nothing a client sends stops the server: a body over
the cap is refused from its Content-Length before it is read (413), a client that stalls
mid-body is dropped after `timeout` seconds, an unexpected error is a one-line 500.
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from vloom.serve.engine import Engine, usage
from vloom.serve.protocol import (
    ApiError,
    Limits,
    completion_body,
    models_body,
    parse_chat,
    parse_json,
)

CHAT = ("/v1/chat/completions", "/chat/completions")
MODELS = ("/v1/models", "/models")
HEALTH = ("/health", "/v1/health")


class Server(ThreadingHTTPServer):
    daemon_threads = True  # open keep-alive connections do not hold shutdown up
    request_queue_size = 128  # listen backlog: socketserver's 5 refuses a burst of clients

    def __init__(
        self,
        address: tuple[str, int],
        engine: Engine,
        limits: Limits,
        request_timeout: float = 600.0,
        quiet: bool = False,
    ) -> None:
        super().__init__(address, Handler)
        self.engine, self.limits = engine, limits
        self.request_timeout, self.quiet = request_timeout, quiet

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def handle_error(self, request, client_address) -> None:  # one line, not a traceback
        if not self.quiet:
            e = sys.exc_info()[1]
            print(f"[vloom] serve: {client_address[0]}: {type(e).__name__}: {e}", file=sys.stderr)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vloom-serve"
    timeout = 60  # seconds a connection may stall (headers, body, keep-alive idle)
    server: Server

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path in HEALTH:
            self._send(200, {"status": "ok", **self.server.engine.stats})
        elif path in MODELS:
            eng = self.server.engine
            self._send(200, models_body(eng.name, eng.context))
        elif path in CHAT:
            self._error(ApiError(405, f"{path}: use POST", None, "method_not_allowed"))
        else:
            self._error(
                ApiError(404, f"{path}: no such route", None, "not_found", "not_found_error")
            )

    def do_POST(self) -> None:
        try:
            body = self._body()  # read first, so a keep-alive connection stays in step
            path = urlsplit(self.path).path.rstrip("/")
            if path not in CHAT:
                raise ApiError(404, f"{path}: no such route", None, "not_found", "not_found_error")
            self._send(200, self._complete(body))
        except ApiError as e:
            self._error(e)
        except Exception as e:  # a bug or a model failure: this request fails, the server stays
            if not self.server.quiet:
                print(f"[vloom] serve: 500: {type(e).__name__}: {e}", file=sys.stderr)
            self._error(
                ApiError(
                    500, f"internal error: {type(e).__name__}: {e}", None, None, "server_error"
                )
            )

    def _complete(self, body: bytes) -> dict[str, Any]:
        srv = self.server
        req = parse_chat(parse_json(body), srv.limits)
        job = srv.engine.prepare(req)
        try:
            samples = srv.engine.submit(job).result(timeout=srv.request_timeout)
        except FutureTimeout:
            raise ApiError(
                504,
                f"generation took over {srv.request_timeout:g} s",
                None,
                "timeout",
                "server_error",
            ) from None
        choices = [(s.text, s.finished) for s in samples]
        return completion_body(srv.engine.name, choices, *usage(job, samples))

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(
                411,
                "send the body with a Content-Length (no chunked encoding)",
                None,
                "length_required",
            )
        raw = self.headers.get("Content-Length")
        try:
            n = int(raw) if raw is not None else -1
        except ValueError:
            n = -1
        if n < 0:
            self.close_connection = True
            raise ApiError(
                411, f"Content-Length: {raw!r} is not a byte count", None, "length_required"
            )
        cap = self.server.limits.max_body_bytes
        if n > cap:
            self.close_connection = True  # the body is left unread
            raise ApiError(
                413, f"body: {n} bytes, over this server's {cap}", None, "body_too_large"
            )
        body = self.rfile.read(n)
        if len(body) < n:  # the client went away mid-body
            self.close_connection = True
            raise ApiError(400, f"body: {len(body)} of {n} bytes arrived", None, "incomplete_body")
        return body

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's errors (a garbled request line, headers too long) as JSON too."""
        self.close_connection = True
        msg = message or HTTPStatus(code).phrase
        self._error(ApiError(code, f"request: {msg}", None, "bad_http_request"))

    def _error(self, e: ApiError) -> None:
        self._send(e.status, e.body(), e.headers)

    def _send(
        self, status: int, obj: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client hung up before its answer: nothing to tell it
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


def start_server(
    engine: Engine,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: Limits | None = None,
    request_timeout: float = 600.0,
    quiet: bool = False,
) -> tuple[Server, threading.Thread]:
    """A running server on (host, port) (port 0: a free one; see `.url`) in a daemon thread;
    stop it with `stop_server`."""
    srv = Server((host, port), engine, limits or Limits(), request_timeout, quiet)
    t = threading.Thread(target=srv.serve_forever, name="vloom-serve-http", daemon=True)
    t.start()
    return srv, t


def stop_server(srv: Server, thread: threading.Thread) -> None:
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)
    srv.engine.close()
