"""fetch_images against a loopback HTTP server that misbehaves in every way the fetcher handles."""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vloom.ingest.base import IngestError, IngestOptions
from vloom.ingest.fetch import fetch_images
from vloom.media import check_image


def _png() -> bytes:
    arr = (np.random.RandomState(0).rand(24, 32, 3) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()
MAX_BYTES = 100_000


class _Handler(BaseHTTPRequestHandler):
    hits: Counter = Counter()
    agents: list[str] = []

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str = "image/png", length: int | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        self.hits[path] += 1
        self.agents.append(self.headers.get("User-Agent", ""))
        n = self.hits[path]
        try:
            if path in ("/good.png", "/caf%C3%A9%20photo.png?size=big%20one"):
                self._send(200, PNG)
            elif path == "/photo.txt":  # an image whatever the name and the header say
                self._send(200, PNG, ctype="text/plain")
            elif path == "/slow.png":  # drips one byte at a time: each recv is quick
                self.send_response(200)
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                for b in PNG:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.05)
            elif path == "/slow-headers.png":
                for b in b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n":
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.05)
            elif path == "/huge.png":  # declares more than the cap
                self.send_response(200)
                self.send_header("Content-Length", str(50 * MAX_BYTES))
                self.end_headers()
                self.wfile.write(PNG)
            elif path == "/endless.png":  # no length, a real PNG head, then far too much
                self.send_response(200)
                self.end_headers()
                self.wfile.write(PNG[:64])
                for _ in range(40):
                    self.wfile.write(b"\0" * 8192)
            elif path == "/truncated.png":
                self._send(200, PNG[: len(PNG) // 2], length=len(PNG))
            elif path == "/page.png":
                self._send(200, b"<!doctype html><html><body>Not here</body></html>")
            elif path == "/missing.png":
                self._send(404, b"not found", ctype="text/plain")
            elif path == "/flaky.png":
                self._send(503, b"busy", ctype="text/plain") if n == 1 else self._send(200, PNG)
            elif path == "/limited.png":
                if n == 1:
                    self.send_response(429)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._send(200, PNG)
            elif path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/good.png")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/loop":
                self.send_response(302)
                self.send_header("Location", "/loop")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/reset.png":  # hang up without a response
                self.close_connection = True
            else:
                self._send(404, b"", ctype="text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on us, as it should


@pytest.fixture()
def server():
    _Handler.hits = Counter()
    _Handler.agents = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", _Handler.hits
    srv.shutdown()
    srv.server_close()


def _opts(tmp_path: Path, **kw) -> IngestOptions:
    base = dict(out_dir=tmp_path, fetch=True, fetch_workers=4, fetch_timeout=1.0)
    base.update(kw)
    opts = IngestOptions(**base, max_image_bytes=MAX_BYTES)
    opts.extra["fetch_retries"] = 2
    return opts


def test_fetch_outcomes(server, tmp_path):
    base, hits = server
    paths = [
        "/good.png",
        "/photo.txt",
        "/slow.png",
        "/slow-headers.png",
        "/huge.png",
        "/endless.png",
        "/truncated.png",
        "/page.png",
        "/missing.png",
        "/flaky.png",
        "/limited.png",
        "/moved",
        "/loop",
        "/reset.png",
    ]
    odd = ["ftp://127.0.0.1/x.png", "http:///nohost.png", "http://127.0.0.1:99999/x.png"]
    urls = [base + p for p in paths] + [base + "/café photo.png?size=big one"] + odd
    got = fetch_images(urls + [base + "/good.png"], _opts(tmp_path))
    assert list(got) == urls  # one entry per distinct URL, in the order given
    outcome = {u.removeprefix(base): v if isinstance(v, str) else "bytes" for u, v in got.items()}
    assert outcome == {
        "/good.png": "bytes",
        "/photo.txt": "bytes",
        "/slow.png": "timeout",
        "/slow-headers.png": "timeout",
        "/huge.png": "too_large",
        "/endless.png": "too_large",
        "/truncated.png": "truncated",
        "/page.png": "not_an_image",
        "/missing.png": "http_404",
        "/flaky.png": "bytes",
        "/limited.png": "bytes",
        "/moved": "bytes",
        "/loop": "too_many_redirects",
        "/reset.png": "connection_error",
        "/café photo.png?size=big one": "bytes",  # sent percent-encoded
        "ftp://127.0.0.1/x.png": "bad_scheme",
        "http:///nohost.png": "bad_url",
        "http://127.0.0.1:99999/x.png": "bad_url",
    }
    for p in ("/good.png", "/photo.txt", "/flaky.png", "/limited.png", "/moved"):
        assert got[base + p] == PNG
        check_image(got[base + p])
    # retried: transient failures; not retried: 404, timeouts, oversize, non-images
    assert hits["/flaky.png"] == 2 and hits["/limited.png"] == 2
    assert hits["/truncated.png"] == 3 and hits["/reset.png"] == 3
    for p in ("/missing.png", "/slow.png", "/huge.png", "/page.png"):
        assert hits[p] == 1, p
    assert all(a.startswith("vloom/") for a in _Handler.agents)


def test_fetch_is_off_unless_asked(server, tmp_path):
    base, hits = server
    got = fetch_images([base + "/good.png"], _opts(tmp_path, fetch=False))
    assert got == {base + "/good.png": "fetch_disabled"}
    assert sum(hits.values()) == 0
    assert fetch_images([], _opts(tmp_path)) == {}


@pytest.mark.parametrize(
    "bad", [{"fetch_timeout": 0.0}, {"fetch_workers": 0}, {"max_image_bytes": 0}]
)
def test_fetch_rejects_unusable_options(tmp_path, bad):
    opts = IngestOptions(out_dir=tmp_path, fetch=True, **bad)
    with pytest.raises(IngestError, match="fetch options must be positive"):
        fetch_images(["http://127.0.0.1:9/a.png"], opts)
