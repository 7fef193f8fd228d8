"""The WARC source: same documents as the directory of pages; truncation and other records."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingestfix import SITE, make_site, png, site_records, write_warc

from vloom.doc import read_documents
from vloom.ingest.base import IngestOptions
from vloom.ingest.run import run_ingest
from vloom.ingest.warc import normalize_url


def _ingest(kind, inputs, out):
    led = run_ingest(kind, list(inputs), out, IngestOptions(out_dir=out), quiet=True)
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
    pages = [
        (
            f"{SITE}p{i}.html",
            f"<html><body><p>page {i} {'x' * 3000}</p></body></html>".encode(),
            "text/html",
        )
        for i in range(6)
    ]
    write_warc(tmp_path / "full.warc.gz", pages)
    data = (tmp_path / "full.warc.gz").read_bytes()
    (tmp_path / "a_cut.warc.gz").write_bytes(data[: len(data) // 2 + 7])
    write_warc(tmp_path / "b_ok.warc.gz", [(f"{SITE}ok.html", b"<p>fine page</p>", "text/html")])
    (tmp_path / "c_junk.warc").write_bytes(b"this is not a WARC file\n" * 20)
    (tmp_path / "full.warc.gz").unlink()

    led, docs = _ingest("warc", [tmp_path], tmp_path / "out")
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
