"""The WARC source: same documents as the directory of pages; truncation and other records."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingestfix import SITE, make_site, png, site_records, write_warc

from vloom.doc import read_documents
from vloom.ingest.base import IngestOptions
from vloom.ingest.run import run_ingest
from vloom.ingest.warc import normalize_url

READER = {"name": None}  # the WARC reader under test: FastWARC, and warcio (the fallback)


@pytest.fixture(autouse=True, params=["fastwarc", "warcio"])
def warc_reader(request):
    if request.param == "fastwarc":
        pytest.importorskip("fastwarc", reason="fastwarc not installed (pip install fastwarc)")
    READER["name"] = request.param
    yield request.param
    READER["name"] = None


def _opts(out, **extra):
    return IngestOptions(out_dir=out, extra={"warc_reader": READER["name"], **extra})


def _ingest(kind, inputs, out):
    led = run_ingest(kind, list(inputs), out, _opts(out), quiet=True)
    return led, list(read_documents(out))


@pytest.mark.parametrize("gzip", [True, False])
def test_warc_gives_the_same_documents_as_the_directory(tmp_path, gzip):
    site = tmp_path / "site"
    make_site(site)
    _, from_dir = _ingest("html", [site], tmp_path / "out_dir")

    pages, images = site_records(site)
    ext = ".warc.gz" if gzip else ".warc"
    # pages in one WARC, their images (typed text/html: the reader must sniff) in another,
    # listed before the pages so index order does not matter
    write_warc(tmp_path / f"b_pages{ext}", pages, gzip=gzip, extras=True)
    write_warc(tmp_path / f"a_images{ext}", images, gzip=gzip)
    led, from_warc = _ingest(
        "warc", [tmp_path / f"a_images{ext}", tmp_path / f"b_pages{ext}"], tmp_path / "out_warc"
    )

    assert len(from_warc) == len(from_dir) == 3
    for d, w in zip(from_dir, from_warc, strict=True):
        assert w.texts == d.texts and w.images == d.images
        assert w.language == d.language and w.metadata["title"] == d.metadata["title"]
        assert [m["caption"] for m in w.metadata["images"]] == [
            m["caption"] for m in d.metadata["images"]
        ]
        assert w.url == SITE + d.url and w.source == "warc"
    # every record is one input: 3 pages kept; 5 images, 3 requests, warcinfo, 404, JSON dropped
    assert led.input == 3 + 5 + 3 + 1 + 1 + 1 and led.kept == 3 and led.n_rejected == 0
    assert dict(led.dropped["warc"]) == {
        "image_record": 5,
        "request_record": 3,
        "warcinfo_record": 1,
        "http_4xx": 1,
        "not_html": 1,
    }
    assert led.extra["images"]["by_origin"] == {"warc": {"references": 5, "attached": 5}}


def test_truncated_warc_keeps_what_was_read_and_the_run_goes_on(tmp_path):
    src = tmp_path / "crawl"  # walked; the output lies beside it, not inside
    src.mkdir()
    pages = [
        (
            f"{SITE}p{i}.html",
            f"<html><body><p>page {i} {'x' * 3000}</p></body></html>".encode(),
            "text/html",
        )
        for i in range(6)
    ]
    write_warc(src / "full.warc.gz", pages)
    data = (src / "full.warc.gz").read_bytes()
    (src / "a_cut.warc.gz").write_bytes(data[: len(data) // 2 + 7])
    write_warc(src / "b_ok.warc.gz", [(f"{SITE}ok.html", b"<p>fine page</p>", "text/html")])
    (src / "c_junk.warc").write_bytes(b"this is not a WARC file\n" * 20)
    (src / "full.warc.gz").unlink()

    led, docs = _ingest("warc", [src], tmp_path / "out")
    kept = [d.texts[0].split()[1] for d in docs[:-1]]
    assert 1 <= len(kept) < 6 and kept == [str(i) for i in range(len(kept))]
    assert docs[-1].texts == ["fine page"]
    assert led.rejected == {"warc_truncated": 1, "not_a_warc": 1}
    assert led.input == led.kept + 2


def test_uncompressed_warc_cut_mid_record(tmp_path):
    pages = [
        (f"{SITE}p{i}.html", f"<p>page {i} {'y' * 2000}</p>".encode(), "text/html")
        for i in range(4)
    ]
    write_warc(tmp_path / "full.warc", pages, gzip=False)
    data = (tmp_path / "full.warc").read_bytes()
    for cut in (len(data) // 2 + 100, len(data) - 40, len(data) // 2 + 300):
        (tmp_path / "cut.warc").write_bytes(data[:cut])
        led, docs = _ingest("warc", [tmp_path / "cut.warc"], tmp_path / f"out{cut}")
        assert led.rejected == {"warc_truncated": 1}, cut
        assert all("y" * 2000 in d.texts[0] for d in docs)  # no partial page was kept
        assert led.input == led.kept + 1


def test_image_urls_resolve_across_spellings(tmp_path):
    img = png(21)
    page = (
        b'<p>t</p><img src="/a%20b.png?cache=1"><img src="//example.org/c.png">'
        b'<img src="http://elsewhere.example/x.png">'
    )
    write_warc(
        tmp_path / "w.warc.gz",
        [
            (SITE + "dir/page.html", page, "text/html"),
            ("<" + SITE + "a b.png>", img, "image/jpeg"),  # WARC/1.1 style <uri>, raw space
            ("http://EXAMPLE.org/c.png", png(22), "image/png"),
        ],
    )
    led, docs = _ingest("warc", [tmp_path / "w.warc.gz"], tmp_path / "out")
    assert docs[0].images == [None, img, png(22)]
    assert led.extra["images"]["missing"] == {"remote_not_fetched": 1}
    assert normalize_url("http://Example.org/a b.png#f") == "http://example.org/a%20b.png"


GIMP = Path("/usr/share/gimp/2.0/help/en")


@pytest.mark.skipif(
    not GIMP.is_dir(), reason="gimp-help-en not installed (apt-get install gimp-help-en)"
)
def test_gimp_pages_as_a_warc_match_the_files(tmp_path):
    from vloom.ingest.html import extract_page

    pages = sorted(GIMP.glob("*.html"))[100:130]
    site = "https://docs.gimp.org/2.10/en/"
    page_recs, image_urls = [], {}
    for p in pages:
        data = p.read_bytes()
        page_recs.append((site + p.name, data, "text/html; charset=utf-8"))
        for item in extract_page(data).items:
            if not isinstance(item, str):
                image_urls[item.src] = GIMP / item.src
    image_recs = [
        (site + src, path.read_bytes(), "image/png") for src, path in sorted(image_urls.items())
    ]
    write_warc(tmp_path / "gimp.warc.gz", image_recs + page_recs)  # images first this time
    _, from_dir = _ingest("html", pages, tmp_path / "out_dir")
    led, from_warc = _ingest("warc", [tmp_path / "gimp.warc.gz"], tmp_path / "out_warc")
    assert len(from_warc) == len(from_dir) == 30
    for d, w in zip(from_dir, from_warc, strict=True):
        assert (w.texts, w.images) == (d.texts, d.images), d.url
    im = led.extra["images"]
    assert im["attached"] == im["references"] > 30


def _pages(n: int) -> list[tuple[str, bytes, str]]:
    return [
        (
            f"{SITE}p{i}.html",
            f"<html><body><p>page {i} {'x' * 3000}</p></body></html>".encode(),
            "text/html",
        )
        for i in range(n)
    ]


def _members(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each gzip member of a warcio .warc.gz (one member per record)."""
    import zlib

    spans, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        spans.append((pos, end))
        pos = end
    return spans


@pytest.mark.parametrize("bad", [[4], [4, 5], [0], [9], [2, 7]])
def test_corrupt_gzip_members_lose_only_their_records(tmp_path, bad):
    write_warc(tmp_path / "a.warc.gz", _pages(10))
    data = bytearray((tmp_path / "a.warc.gz").read_bytes())
    spans = _members(bytes(data))
    assert len(spans) == 10
    for k in bad:  # garble the middle of member k: its deflate data or CRC no longer hold
        start, end = spans[k]
        mid = (start + end) // 2
        data[mid : mid + 24] = bytes(24)
    (tmp_path / "a.warc.gz").write_bytes(bytes(data))
    led, docs = _ingest("warc", [tmp_path / "a.warc.gz"], tmp_path / "out")
    assert [int(d.texts[0].split()[1]) for d in docs] == [i for i in range(10) if i not in bad]
    assert led.input == 10 and led.rejected == {"warc_record_corrupt": len(bad)}


def test_garbled_record_in_an_uncompressed_warc_loses_only_that_record(tmp_path):
    write_warc(tmp_path / "a.warc", _pages(5), gzip=False)
    data = (tmp_path / "a.warc").read_bytes()
    third = [i for i in range(len(data)) if data.startswith(b"WARC/1.", i)][2]
    garbled = data[:third] + b"XXXX" + data[third + 4 :]  # the header line is no longer WARC/
    (tmp_path / "a.warc").write_bytes(garbled)
    led, docs = _ingest("warc", [tmp_path / "a.warc"], tmp_path / "out")
    assert [int(d.texts[0].split()[1]) for d in docs] == [0, 1, 3, 4]
    assert led.input == 5 and led.rejected == {"warc_record_corrupt": 1}


@pytest.mark.parametrize("gz", [True, False])
def test_record_declaring_a_huge_length_is_rejected_unread(tmp_path, gz):
    import gzip as gzip_mod

    write_warc(tmp_path / "plain.warc", _pages(4), gzip=False)
    data = (tmp_path / "plain.warc").read_bytes()
    starts = [i for i in range(len(data)) if data.startswith(b"WARC/1.", i)] + [len(data)]
    recs = [data[a:b] for a, b in zip(starts, starts[1:], strict=False)]
    head, sep, rest = recs[1].partition(b"\r\n\r\n")
    head = b"\r\n".join(
        b"Content-Length: 10000000000" if h.startswith(b"Content-Length:") else h
        for h in head.split(b"\r\n")
    )
    recs[1] = head + sep + rest  # declares 10 GB, holds 3 KB
    name = "huge.warc.gz" if gz else "huge.warc"
    out = b"".join(gzip_mod.compress(r) for r in recs) if gz else b"".join(recs)
    (tmp_path / name).write_bytes(out)
    led, docs = _ingest("warc", [tmp_path / name], tmp_path / "out")
    assert [int(d.texts[0].split()[1]) for d in docs] == [0, 2, 3]
    assert led.input == 4 and led.rejected == {"warc_record_too_large": 1}
    # the cap is an option: at 1000 bytes every page record is too large
    opts = _opts(tmp_path / "small", max_record_bytes=1000)
    led = run_ingest("warc", [tmp_path / name], tmp_path / "small", opts, quiet=True)
    assert led.kept == 0 and led.rejected == {"warc_record_too_large": 4}


def test_warc_symlink_out_of_the_input_dir_and_fifo_rejected(tmp_path):
    import os

    src, outside = tmp_path / "crawl", tmp_path / "elsewhere"
    src.mkdir()
    outside.mkdir()
    write_warc(src / "a.warc.gz", _pages(2))
    write_warc(outside / "secret.warc.gz", _pages(3))
    (src / "b_link.warc.gz").symlink_to(outside / "secret.warc.gz")
    os.mkfifo(src / "c_pipe.warc")  # opening it for reading would block forever
    led, docs = _ingest("warc", [src], tmp_path / "out")
    assert len(docs) == 2
    assert led.rejected == {"outside_root": 1, "unreadable_file": 1}


def _lying_records(path: Path) -> None:
    """Records whose payloads are not what their headers say, between two honest pages."""
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    def resp(w, url, payload, headers):
        http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
        return w.create_warc_record(
            url, "response", payload=io.BytesIO(payload), length=len(payload), http_headers=http
        )

    page = b'<p>first page</p><img src="fake.png"><img src="real.png">'
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        w.write_record(resp(w, SITE + "a.html", page, [("Content-Type", "text/html")]))
        # typed image/png, holds HTML: not an image (never attached), not a page either
        w.write_record(
            resp(
                w,
                SITE + "fake.png",
                b"<html><p>not a png</p></html>",
                [("Content-Type", "image/png")],
            )
        )
        w.write_record(resp(w, SITE + "real.png", png(5), [("Content-Type", "text/html")]))
        # declares gzip content-encoding on plain bytes: read as the bytes they are
        w.write_record(
            resp(
                w,
                SITE + "b.html",
                b"<p>second page, not gzipped</p>",
                [("Content-Type", "text/html"), ("Content-Encoding", "gzip")],
            )
        )
        # declares chunked transfer-encoding on bytes that are not chunked
        w.write_record(
            resp(
                w,
                SITE + "c.html",
                b"<p>third page, not chunked</p>",
                [("Content-Type", "text/html"), ("Transfer-Encoding", "chunked")],
            )
        )
        w.write_record(
            resp(w, SITE + "d.html", b"<p>last page</p>", [("Content-Type", "text/html")])
        )


def test_records_whose_payload_lies_about_its_headers_are_counted_and_the_run_goes_on(tmp_path):
    _lying_records(tmp_path / "lies.warc.gz")
    led, docs = _ingest("warc", [tmp_path / "lies.warc.gz"], tmp_path / "out")
    led.check()
    texts = [d.texts[0] for d in docs]
    assert texts[0] == "first page" and texts[-1] == "last page"
    assert "second page, not gzipped" in texts and "third page, not chunked" in texts
    assert docs[0].images == [None, png(5)]  # the "image/png" HTML is never attached
    assert led.input == 6 and led.kept == 4 and led.n_rejected == 0
    assert dict(led.dropped["warc"]) == {"not_html": 1, "image_record": 1}
    assert len({d.id for d in docs}) == len(docs)  # nothing written twice


def test_a_record_that_raises_or_stalls_is_rejected_and_the_next_is_read(tmp_path, hostile):
    import time

    write_warc(tmp_path / "a.warc.gz", _pages(5))
    hostile("p1.html")
    hostile("p3.html", "stall")
    out = tmp_path / "out"
    opts = _opts(out)
    opts.unit_timeout = 0.5
    t0 = time.monotonic()
    led = run_ingest("warc", [tmp_path / "a.warc.gz"], out, opts, quiet=True)
    assert time.monotonic() - t0 < 20  # the stalled record was cut at its budget
    led.check()
    docs = list(read_documents(out))
    assert [int(d.texts[0].split()[1]) for d in docs] == [0, 2, 4]
    assert led.input == 5 and dict(led.rejected) == {
        "record_error:KeyError": 1,
        "record_timeout": 1,
    }


def test_warc_reader_option_is_checked(tmp_path):
    from vloom.ingest.base import IngestError

    write_warc(tmp_path / "a.warc.gz", _pages(1))
    opts = IngestOptions(out_dir=tmp_path / "out", extra={"warc_reader": "fast"})
    with pytest.raises(IngestError, match="warc_reader"):
        run_ingest("warc", [tmp_path / "a.warc.gz"], tmp_path / "out", opts, quiet=True)


def test_response_records_whose_block_is_not_http_are_counted(tmp_path):
    import gzip as gzip_mod

    def rec(url: str, block: bytes) -> bytes:
        head = (
            f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\n"
            f"WARC-Record-ID: <urn:uuid:{len(url)}-{len(block)}>\r\n"
            f"Content-Type: application/http; msgtype=response\r\n"
            f"Content-Length: {len(block)}\r\n\r\n"
        ).encode()
        return gzip_mod.compress(head + block + b"\r\n\r\n")

    ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
    blocks = [
        (SITE + "a.html", ok + b"<p>one</p>"),
        (SITE + "b.html", b"garbage, not an HTTP response"),
        (SITE + "c.html", b"HTTP/1.1 abc\r\n\r\n<p>x</p>"),  # no status code
        (SITE + "e.html", b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"),  # headers cut
        (SITE + "d.html", ok + b"<p>four</p>"),
    ]
    (tmp_path / "h.warc.gz").write_bytes(b"".join(rec(u, b) for u, b in blocks))
    led, docs = _ingest("warc", [tmp_path / "h.warc.gz"], tmp_path / "out")
    led.check()
    assert [d.texts for d in docs] == [["one"], ["four"]]
    assert led.input == 5 and led.n_rejected == 0
    assert dict(led.dropped["warc"]) == {"bad_http_status": 2, "no_content": 1}


@pytest.mark.parametrize("budget", ["IMAGE_CACHE_BYTES", "PAGE_CACHE_BYTES"])
def test_records_past_the_kept_budget_are_re_read_from_the_warc(tmp_path, monkeypatch, budget):
    import vloom.ingest.warc as warc_mod

    site = tmp_path / "site"
    make_site(site)
    pages, images = site_records(site)
    # other record kinds and a corrupt member too: counted the same whether pass 2 replays
    # what pass 1 kept or reads the file again
    write_warc(tmp_path / "a.warc.gz", images + pages + _pages(2), extras=True)
    data = bytearray((tmp_path / "a.warc.gz").read_bytes())
    start, end = _members(bytes(data))[-3]
    data[(start + end) // 2 : (start + end) // 2 + 24] = bytes(24)
    (tmp_path / "a.warc.gz").write_bytes(bytes(data))
    led0, kept = _ingest("warc", [tmp_path / "a.warc.gz"], tmp_path / "kept")
    # IMAGE_CACHE_BYTES 0: every image re-read by offset; PAGE_CACHE_BYTES 0: the file read again
    monkeypatch.setattr(warc_mod, budget, 0)
    led, reread = _ingest("warc", [tmp_path / "a.warc.gz"], tmp_path / "reread")
    assert [(d.texts, d.images) for d in reread] == [(d.texts, d.images) for d in kept]
    assert led.to_dict() == led0.to_dict()
    assert led.extra["images"]["attached"] >= 4 and led.rejected["warc_record_corrupt"] >= 1


@pytest.mark.parametrize("into_next", [1, 2, 3, 10])
def test_a_warc_cut_just_inside_a_gzip_member_keeps_the_whole_record_before_it(tmp_path, into_next):
    # a cut one or two bytes into the next member's magic left the record before it whole but
    # read as corrupt (1 in ~300 random cuts of the test above)
    import zlib

    pages = [
        (f"{SITE}p{i}.html", f"<p>page {i} {'x' * 3000}</p>".encode(), "text/html")
        for i in range(4)
    ]
    write_warc(tmp_path / "full.warc.gz", pages)
    data = (tmp_path / "full.warc.gz").read_bytes()
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        d.decompress(data[pos:])
        pos = len(data) - len(d.unused_data)
    src = tmp_path / "crawl"
    src.mkdir()
    # one gzip member a page: cut into the fourth, after three whole pages
    cut_at = starts[3] + into_next
    (src / "a.warc.gz").write_bytes(data[:cut_at])
    led, docs = _ingest("warc", [src], tmp_path / "out")
    kept = [d.texts[0].split()[1] for d in docs]
    assert kept == [str(i) for i in range(len(kept))] and len(kept) == 3, kept
    assert led.rejected == {"warc_truncated": 1}
    assert led.input == led.kept + 1


def test_meta_refresh_redirect_pages_are_dropped_in_a_warc(tmp_path):
    """A crawl keeps the redirect stubs sites leave behind: dropped as "redirect", as in html."""
    text = "<p>The bridge opens to traffic on Monday after three years of work.</p>"
    records = [
        (
            SITE + "old.html",
            b'<meta http-equiv="refresh" content="0; url=new.html">' + text.encode(),
            "text/html",
        ),
        (
            SITE + "new.html",
            b'<meta http-equiv="refresh" content="900">' + text.encode(),
            "text/html",
        ),
    ]
    write_warc(tmp_path / "a.warc.gz", records)
    led, docs = _ingest("warc", [tmp_path / "a.warc.gz"], tmp_path / "out")
    led.check()
    assert [d.url for d in docs] == [SITE + "new.html"]
    assert dict(led.dropped["warc"]) == {"redirect": 1}
