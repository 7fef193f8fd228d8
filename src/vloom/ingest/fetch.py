"""Download images by http(s) URL, only when the user asked for it (`opts.fetch`).

Policy per URL, and what it costs:
- one attempt has a hard deadline of `opts.fetch_timeout` seconds for everything (connect,
  headers, body): a watchdog shuts the socket down when it passes, so a server that drips one
  byte a second cannot hold a worker; a timed-out URL is not retried (it already had its time);
- the body is read up to `opts.max_image_bytes` and no further ("too_large"; a larger
  Content-Length is refused before reading); the first bytes must sniff as an image
  (`vloom.media.sniff_image`), whatever the extension or Content-Type say ("not_an_image");
  a body shorter than its Content-Length is "truncated";
- transient failures (connection refused/reset, truncated body, 429, 5xx) are retried with
  exponential backoff (`opts.extra["fetch_retries"]`, default 2 retries); 404 and other 4xx are
  final ("http_404");
- only http and https, redirects followed (at most 5, never to another scheme), identity
  encoding, a User-Agent naming vloom;
- every hop's host is resolved once, within the deadline, and refused ("blocked_address",
  not retried) when it is loopback, private, link-local or otherwise internal, unless
  `opts.fetch_allow` names it (see netguard.py); the connection goes to the very address that
  was checked. A name that does not resolve is "dns_error".
Decoding (decompression bombs, corrupt pixels) is left to the caller's `check_image`.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from urllib.parse import SplitResult, quote, urljoin, urlsplit

from vloom import __version__
from vloom.ingest.base import IngestError, IngestOptions
from vloom.ingest.netguard import (
    Allowlist,
    BlockedAddress,
    Resolver,
    connect,
    resolve,
    system_resolver,
)
from vloom.media import sniff_image

USER_AGENT = f"vloom/{__version__} (image fetcher for research datasets; +https://github.com/vloom)"
MAX_REDIRECTS = 5
DEFAULT_RETRIES = 2
BACKOFF_S = 0.25  # first retry waits this long, then doubles
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_CHUNK = 64 * 1024
_SNIFF_BYTES = 16


class _Transient(Exception):
    """A failure worth another attempt; `reason` is what is reported if none is left."""

    def __init__(self, reason: str, retry_after: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Final(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fetch_images(
    urls: Iterable[str], opts: IngestOptions, resolver: Resolver = system_resolver
) -> dict[str, bytes | str]:
    """Download each distinct URL; value is the body (bytes) or a short failure reason (str).

    With `opts.fetch` off nothing touches the network and every URL maps to "fetch_disabled".
    Results are keyed in first-seen order, independent of which download finishes first.
    `resolver` turns host names into addresses (tests pass a stub).
    """
    unique = list(dict.fromkeys(urls))
    if not opts.fetch:
        return {u: "fetch_disabled" for u in unique}
    if opts.fetch_timeout <= 0 or opts.fetch_workers < 1 or opts.max_image_bytes < 1:
        raise IngestError(
            f"fetch options must be positive: timeout {opts.fetch_timeout}, workers "
            f"{opts.fetch_workers}, max image bytes {opts.max_image_bytes}"
        )
    if not unique:
        return {}
    retries = int(opts.extra.get("fetch_retries", DEFAULT_RETRIES))
    if retries < 0:
        raise IngestError(f"fetch_retries must be >= 0, got {retries}")
    allow = allowlist(opts)
    ctx = ssl.create_default_context()
    workers = max(1, min(int(opts.fetch_workers), len(unique)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vloom-fetch") as pool:
        results = pool.map(lambda u: fetch_one(u, opts, retries, ctx, allow, resolver), unique)
        return dict(zip(unique, results, strict=True))


def allowlist(opts: IngestOptions) -> Allowlist:
    """`opts.fetch_allow` parsed; IngestError names a bad entry."""
    try:
        return Allowlist.parse(opts.fetch_allow)
    except ValueError as e:
        raise IngestError(str(e)) from None


def fetch_one(
    url: str,
    opts: IngestOptions,
    retries: int = DEFAULT_RETRIES,
    ctx: ssl.SSLContext | None = None,
    allow: Allowlist | None = None,
    resolver: Resolver = system_resolver,
) -> bytes | str:
    """One URL with retries: the image bytes or a failure reason."""
    ctx = ctx or ssl.create_default_context()
    allow = allowlist(opts) if allow is None else allow
    for attempt in range(retries + 1):
        try:
            return _attempt(url, opts, ctx, allow, resolver)
        except _Final as e:
            return e.reason
        except (ValueError, UnicodeError, http.client.InvalidURL):  # a URL http.client refuses
            return "bad_url"
        except _Transient as e:
            if attempt == retries:
                return e.reason
            time.sleep(max(BACKOFF_S * 2**attempt, min(e.retry_after, opts.fetch_timeout)))
    raise AssertionError("unreachable")


def _attempt(
    url: str, opts: IngestOptions, ctx: ssl.SSLContext, allow: Allowlist, resolver: Resolver
) -> bytes:
    deadline = time.monotonic() + opts.fetch_timeout
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise _Final("bad_scheme")
        if not parts.hostname:
            raise _Final("bad_url")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Final("timeout")
        try:
            port = parts.port
        except ValueError:
            raise _Final("bad_url") from None
        host = parts.hostname.encode("idna").decode("ascii")  # UnicodeError: bad_url
        if port is None:
            port = 443 if parts.scheme == "https" else 80
        addrs = _resolve(host, port, allow, remaining, resolver)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Final("timeout")
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        kw = {"context": ctx} if parts.scheme == "https" else {}
        conn = cls(host, port, timeout=remaining, **kw)  # Host header and TLS name: the URL's
        # ...but the socket goes to the checked address: no second lookup, no DNS rebinding
        conn._create_connection = partial(_connect, addrs)  # type: ignore[attr-defined]
        timer = threading.Timer(remaining, _shutdown, args=(conn,))
        timer.daemon = True
        timer.start()
        try:
            location = _request(conn, parts, url, opts, deadline)
            if isinstance(location, bytes):
                return location
            url = location
        except TimeoutError:
            raise _Final("timeout") from None
        except OSError as e:
            if time.monotonic() >= deadline:  # the watchdog shut the socket down
                raise _Final("timeout") from None
            if isinstance(e, ssl.SSLError | ssl.CertificateError):
                raise _Final("tls_error") from None
            raise _Transient("connection_error") from None
        except http.client.IncompleteRead:
            raise _Transient("truncated") from None
        except http.client.HTTPException:
            if time.monotonic() >= deadline:
                raise _Final("timeout") from None
            raise _Transient("bad_response") from None
        finally:
            timer.cancel()
            conn.close()
    raise _Final("too_many_redirects")


def _resolve(
    host: str, port: int, allow: Allowlist, timeout: float, resolver: Resolver
) -> list[tuple[int, tuple]]:
    try:
        return resolve(host, port, allow, timeout, resolver)
    except BlockedAddress:
        raise _Final("blocked_address") from None
    except TimeoutError:
        raise _Final("timeout") from None
    except socket.gaierror:
        raise _Final("dns_error") from None
    except OSError:
        raise _Transient("dns_error") from None


def _connect(
    addrs: list[tuple[int, tuple]], _address: object, timeout: float, *_: object
) -> socket.socket:
    """Stands in for socket.create_connection inside http.client: ignores the host it is given."""
    return connect(addrs, timeout)


def _shutdown(conn: http.client.HTTPConnection) -> None:
    """Watchdog: wake a blocked recv by shutting the socket down (close alone would not)."""
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _request(
    conn: http.client.HTTPConnection,
    parts: SplitResult,
    url: str,
    opts: IngestOptions,
    deadline: float,
) -> bytes | str:
    """The body (bytes) or the redirect target (str); raises _Final/_Transient/OSError."""
    # non-ASCII and spaces percent-encoded; existing escapes and reserved characters kept
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=~?")
    conn.request(
        "GET",
        path,
        headers={"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"},
    )
    resp = conn.getresponse()
    status = resp.status
    if status in (301, 302, 303, 307, 308):
        loc = resp.getheader("Location")
        if not loc:
            raise _Final(f"http_{status}")
        return urljoin(url, loc)
    if status in _RETRY_STATUS:
        raise _Transient(f"http_{status}", _retry_after(resp.getheader("Retry-After")))
    if status != 200:
        raise _Final(f"http_{status}")
    declared = resp.getheader("Content-Length")
    expected = int(declared) if declared and declared.strip().isdigit() else None
    if expected is not None and expected > opts.max_image_bytes:
        raise _Final("too_large")
    body = bytearray()
    while True:
        chunk = resp.read1(_CHUNK)
        if time.monotonic() >= deadline:  # also how a watchdog shutdown (an early EOF) ends
            raise _Final("timeout")
        if not chunk:
            break
        body += chunk
        if len(body) > opts.max_image_bytes:
            raise _Final("too_large")
        if (
            len(body) - len(chunk) < _SNIFF_BYTES <= len(body)
            and sniff_image(bytes(body[:16])) is None
        ):
            raise _Final("not_an_image")
    if expected is not None and len(body) < expected:
        raise _Transient("truncated")
    if sniff_image(bytes(body[:16])) is None:  # bodies shorter than the sniff window
        raise _Final("not_an_image")
    return bytes(body)


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0  # an HTTP date: fall back to our own backoff
