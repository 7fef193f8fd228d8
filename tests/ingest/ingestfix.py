"""Small real inputs for the HTML/WARC ingestion tests: pages, images, WARCs written with warcio."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

SITE = "http://example.org/"


def png(seed: int, w: int = 24, h: int = 16) -> bytes:
    arr = (np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def jpeg(seed: int) -> bytes:
    arr = (np.random.RandomState(seed).rand(20, 20, 3) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG")
    return buf.getvalue()


def bomb_png(side: int = 40_000) -> bytes:
    """A valid-looking PNG of a few hundred bytes that declares side x side pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def page(title: str, body: str, lang: str = "en") -> str:
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>p {{color: red}}</style><script>var x = 'script text';</script></head>"
        f"<body>{body}</body></html>"
    )


# Boilerplate around every page: none of these strings may reach a document.
BOILER = (
    '<a class="skip-link" href="#c">Skip to content</a>'
    '<header class="site"><img src="/img/logo.png" alt="logo">SiteHeaderText</header>'
    '<nav><ul><li><a href="/">NavHome</a></li><li>NavAbout</li></ul></nav>'
    '<div class="breadcrumbs">Home &gt; Crumb</div>'
    '<div id="cookie-banner">We use cookies CookieText <button>Accept</button></div>'
    '<div class="navheader"><table><tr><td><img src="img/prev.png" alt="Prev">NavHeaderText'
    "</td></tr></table></div>"
)
FOOTER = (
    '<aside class="sidebar">SidebarText</aside>'
    '<form><input value="FormText"><label>FormLabel</label></form>'
    '<div hidden>HiddenText</div><div style="display: none">StyleHiddenText</div>'
    "<footer>FooterText &copy; 2024</footer>"
)
BOILER_WORDS = (
    "Skip to content",
    "SiteHeaderText",
    "NavHome",
    "NavAbout",
    "Crumb",
    "CookieText",
    "Accept",
    "NavHeaderText",
    "SidebarText",
    "FormText",
    "FormLabel",
    "HiddenText",
    "StyleHiddenText",
    "FooterText",
    "script text",
    "color: red",
)


def make_site(root: Path) -> dict[str, bytes]:
    """Three pages in nested directories with images in several places. Returns rel -> bytes
    of every image file, so a WARC can be written from the very same files."""
    images = {
        "img/logo.png": png(1),
        "img/prev.png": png(2),
        "img/a b.png": png(3),  # a name that pages must percent-encode
        "img/photo.jpg": jpeg(4),
        "docs/fig/diagram.png": png(5, 40, 30),
    }
    pages = {
        "index.html": page(
            "Home",
            BOILER + "<main><h1>Welcome</h1><p>First   paragraph\n of the <b>home</b> page.</p>"
            '<figure><img src="img/a%20b.png?v=3" alt="A  picture"><figcaption>The caption'
            "</figcaption></figure><p>After the figure.</p>"
            '<ul><li>one</li><li>two</li></ul><img src="img/photo.jpg#frag" title="Photo"></main>'
            + FOOTER,
        ),
        "docs/guide.html": page(
            "Guide",
            BOILER + '<div class="sect1"><h2>Guide</h2><p>Intro line<br>second line</p>'
            '<div class="figure"><p class="title"><b>Figure 1. A diagram</b></p>'
            '<div class="mediaobject"><img src="fig/diagram.png" alt="Diagram"></div></div>'
            "<pre>  code  block\n    indented</pre>"
            "<table><tr><th>Key</th><th>Value</th></tr><tr><td>a</td><td>1</td></tr></table>"
            '<p>Logo again: <img src="../img/logo.png" alt="Logo"> inline.</p></div>' + FOOTER,
        ),
        "docs/deeper/leaf.htm": page(
            "Leaf",
            BOILER + '<article><p>Leaf text.</p><img src="/img/photo.jpg"></article>' + FOOTER,
            lang="de-DE",
        ),
    }
    for rel, data in images.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    for rel, html in pages.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(html, encoding="utf-8")
    return images


def _response(w: WARCWriter, url: str, payload: bytes, ctype: str, status: str = "200 OK"):
    headers = StatusAndHeaders(status, [("Content-Type", ctype)], protocol="HTTP/1.1")
    return w.create_warc_record(
        url, "response", payload=io.BytesIO(payload), length=len(payload), http_headers=headers
    )


def write_warc(
    path: Path, records: list[tuple[str, bytes, str]], gzip: bool = True, extras: bool = False
) -> None:
    """records: (url, payload, content type). `extras` adds warcinfo, request, 404 and JSON."""
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=gzip)
        if extras:
            w.write_record(w.create_warcinfo_record(path.name, {"software": "vloom-test"}))
        for url, payload, ctype in records:
            if extras:
                req = StatusAndHeaders(
                    "GET / HTTP/1.1", [("Host", "example.org")], is_http_request=True
                )
                w.write_record(w.create_warc_record(url, "request", http_headers=req))
            w.write_record(_response(w, url, payload, ctype))
        if extras:
            w.write_record(
                _response(w, SITE + "missing.html", b"gone", "text/html", "404 Not Found")
            )
            w.write_record(_response(w, SITE + "api.json", b'{"a": 1}', "application/json"))


def site_records(root: Path) -> tuple[list, list]:
    """(page records, image records) for the files under root, sorted like the directory walk.
    Content-Types lie on purpose for images: the WARC reader must sniff."""
    from vloom.ingest.html import HTML_SUFFIXES, walk_inputs

    pages = [
        (SITE + p.relative_to(root).as_posix(), p.read_bytes(), "text/html; charset=utf-8")
        for _, p in walk_inputs([root], HTML_SUFFIXES)
    ]
    images = [
        (SITE + p.relative_to(root).as_posix().replace(" ", "%20"), p.read_bytes(), "text/html")
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(HTML_SUFFIXES)
    ]
    return pages, images


def interrupted_html(inputs, ledger, opts, after: int = 3):
    """The html source, interrupted (as by Ctrl-C) after `after` documents: a run cut short."""
    from vloom.ingest.html import ingest_html

    for n, doc in enumerate(ingest_html(inputs, ledger, opts)):
        if n == after:
            raise KeyboardInterrupt
        yield doc


def stuck_outside_python(unit: str, label: str) -> None:
    """A unit hook (VLOOM_INGEST_TEST_HOOKS) standing for C code that never returns: SIGALRM is
    blocked, so only the worker watchdog can end it."""
    import signal
    import time

    if label.endswith("p0003.html"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(3600)
