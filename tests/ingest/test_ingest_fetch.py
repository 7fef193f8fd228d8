"""fetch_images against a loopback HTTP server that misbehaves in every way the fetcher handles."""

from __future__ import annotations

import io
import ipaddress
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pytest
from PIL import Image

from vloom.ingest.base import IngestError, IngestOptions
from vloom.ingest.fetch import fetch_images
from vloom.ingest.netguard import blocked
from vloom.media import check_image


def _png() -> bytes:
    arr = (np.random.RandomState(0).rand(24, 32, 3) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()
MAX_BYTES = 100_000
LOOPBACK = ["127.0.0.1/32"]


class _Handler(BaseHTTPRequestHandler):
    hits: Counter = Counter()
    agents: list[str] = []
    hosts: list[str] = []

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
        self.hosts.append(self.headers.get("Host", ""))
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
            elif path.startswith("/to/"):  # redirect to the URL after /to/, e.g. another host
                self.send_response(302)
                self.send_header("Location", unquote(path.removeprefix("/to/")))
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


def _serve(host: str, port: int = 0) -> tuple[ThreadingHTTPServer, str, Counter]:
    """A server on `host` with its own request log (a Counter of paths)."""
    hits: Counter = Counter()
    handler = type("H", (_Handler,), {"hits": hits})
    srv = ThreadingHTTPServer((host, port), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://{host}:{srv.server_address[1]}", hits


@pytest.fixture()
def server():
    _Handler.agents = []
    srv, base, hits = _serve("127.0.0.1")
    yield base, hits
    srv.shutdown()
    srv.server_close()


def _opts(tmp_path: Path, **kw) -> IngestOptions:
    # the test server is on loopback, which fetch refuses unless it is allowlisted
    base = dict(
        out_dir=tmp_path, fetch=True, fetch_workers=4, fetch_timeout=1.0, fetch_allow=LOOPBACK
    )
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


# ---------------------------------------------------------------- internal addresses


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


# Every way a URL can name the loopback interface; glibc reads the odd IPv4 forms as 127.0.0.1.
V4_SPELLINGS = ["127.0.0.1", "2130706433", "127.1", "0x7f.1", "0177.0.0.1", "localhost"]
V6_SPELLINGS = ["[::1]", "[::ffff:127.0.0.1]", "[0:0:0:0:0:ffff:7f00:1]", "[::ffff:7f00:1]"]
UNSPECIFIED = ["0.0.0.0", "0", "[::]"]  # connecting to these reaches the local host on Linux


def test_fetch_refuses_loopback_in_every_spelling(tmp_path):
    srv4, base4, hits4 = _serve("127.0.0.1")
    hits6: Counter = Counter()
    srv6 = _Server6(("::1", 0), type("H6", (_Handler,), {"hits": hits6}))
    threading.Thread(target=srv6.serve_forever, daemon=True).start()
    port4, port6 = srv4.server_address[1], srv6.server_address[1]
    try:
        urls = [f"http://{h}:{port4}/good.png" for h in V4_SPELLINGS + UNSPECIFIED]
        urls += [f"http://{h}:{port6}/good.png" for h in V6_SPELLINGS]
        urls += [f"https://localhost:{port4}/good.png"]
        got = fetch_images(urls, _opts(tmp_path, fetch_allow=[]))
        assert got == {u: "blocked_address" for u in urls}
        assert sum(hits4.values()) == 0 and sum(hits6.values()) == 0  # nothing reached them
        # the same URLs do reach the servers once their networks are allowed
        allowed = fetch_images(urls, _opts(tmp_path, fetch_allow=["127.0.0.0/8", "::1"]))
        for u in urls[: len(V4_SPELLINGS)] + [f"http://[::1]:{port6}/good.png"]:
            assert allowed[u] == PNG, u
        assert hits4["/good.png"] == len(V4_SPELLINGS) and hits6["/good.png"] == 1
    finally:
        for srv in (srv4, srv6):
            srv.shutdown()
            srv.server_close()


def test_fetch_refuses_internal_redirect_targets(tmp_path):
    """An allowed host redirects to one that is not: the second hop is refused, unsent."""
    outer, outer_base, outer_hits = _serve("127.0.0.2")  # the allowed "public" host
    inner, _, inner_hits = _serve("127.0.0.1")
    port = inner.server_address[1]
    try:
        targets = [f"http://{h}:{port}/good.png" for h in V4_SPELLINGS] + [
            f"http://[::ffff:127.0.0.1]:{port}/good.png",
            f"http://[::1]:{port}/good.png",
        ]
        urls = [f"{outer_base}/to/{quote(t, safe='')}" for t in targets]
        ok = f"{outer_base}/to/{quote(outer_base + '/good.png', safe='')}"  # same host: fine
        got = fetch_images([*urls, ok], _opts(tmp_path, fetch_allow=["127.0.0.2/32"]))
        assert got == {**{u: "blocked_address" for u in urls}, ok: PNG}
        assert sum(inner_hits.values()) == 0
        assert outer_hits["/good.png"] == 1 and len(outer_hits) == len(urls) + 2
    finally:
        for srv in (outer, inner):
            srv.shutdown()
            srv.server_close()


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "172.31.255.255",
        "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "0.1.2.3", "224.0.0.1",
        "239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1",
        "192.0.0.8", "::1", "::", "fe80::1", "fe80::1%1", "fc00::1", "fd12:3456::1", "fec0::1",
        "ff02::1", "ff0e::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:8.8.8.8",
        "::7f00:1", "::a00:1", "::808:808", "2002:7f00:1::1", "2002:a00:1::1", "2002:a9fe:a9fe::",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:db8::1", "64:ff9b::a00:1",
        "64:ff9b::7f00:1", "64:ff9b:1::a00:1", "100::1",
    ],
)  # fmt: skip
def test_address_classifier_blocks_internal(addr):
    assert blocked(ipaddress.ip_address(addr))


@pytest.mark.parametrize(
    "addr", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "2a00:1450:4001::1"]
)
def test_address_classifier_passes_public(addr):
    assert not blocked(ipaddress.ip_address(addr))


def _stub(table: dict[str, list[str]], calls: Counter):
    """A resolver that answers from `table` and counts lookups; unknown names fail."""

    def resolver(host: str, port: int) -> list[tuple[int, tuple]]:
        calls[host] += 1
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        out = []
        for a in table[host]:
            v6 = ":" in a
            out.append(
                (socket.AF_INET6 if v6 else socket.AF_INET, (a, port, 0, 0) if v6 else (a, port))
            )
        return out

    return resolver


def test_fetch_checks_resolved_addresses_and_connects_to_them(server, tmp_path):
    """Names resolve once, through the resolver, and every answer is checked before connecting.
    The internal answers below are never connected to: blocking happens before any socket."""
    base, hits = server
    port = int(base.rsplit(":", 1)[1])
    calls: Counter = Counter()
    resolver = _stub(
        {
            "intranet.test": ["10.1.2.3"],
            "metadata.test": ["169.254.169.254"],
            "router.test": ["fe80::1%1"],
            "mixed.test": ["93.184.216.34", "192.168.0.10"],  # one internal answer is enough
            "mapped.test": ["::ffff:172.16.0.5"],
            "images.test": ["127.0.0.1"],
        },
        calls,
    )
    names = ["intranet", "metadata", "router", "mixed", "mapped"]
    urls = [f"http://{n}.test:{port}/good.png" for n in names]
    nowhere = f"http://nowhere.test:{port}/good.png"
    got = fetch_images([*urls, nowhere], _opts(tmp_path), resolver)
    assert got == {**{u: "blocked_address" for u in urls}, nowhere: "dns_error"}
    assert sum(hits.values()) == 0
    # an allowlisted name: resolved once by the stub (the system resolver cannot find it), the
    # socket goes to that address, and the request still names the host
    _Handler.hosts = []
    calls.clear()
    ok = fetch_images(
        [f"http://images.test:{port}/good.png"],
        _opts(tmp_path, fetch_allow=["images.test"]),
        resolver,
    )
    assert ok == {f"http://images.test:{port}/good.png": PNG}
    assert calls == Counter({"images.test": 1}) and hits["/good.png"] == 1
    assert _Handler.hosts == [f"images.test:{port}"]


def test_fetch_dns_time_counts_against_the_deadline(tmp_path):
    def slow(host: str, port: int):
        time.sleep(3.0)
        return [(socket.AF_INET, ("127.0.0.1", port))]

    t0 = time.monotonic()
    got = fetch_images(["http://slow.test/a.png"], _opts(tmp_path, fetch_timeout=0.3), slow)
    assert got == {"http://slow.test/a.png": "timeout"}
    assert time.monotonic() - t0 < 3.0  # did not wait for the resolver


@pytest.mark.parametrize("entry", ["not a host!", "10.0.0.0/33", "-x.test"])
def test_fetch_allow_entries_are_checked(tmp_path, entry):
    with pytest.raises(IngestError, match="fetch_allow entry"):
        fetch_images(["http://a.test/x.png"], _opts(tmp_path, fetch_allow=[entry]))
