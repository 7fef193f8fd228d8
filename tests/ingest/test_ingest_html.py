"""The HTML source: reading order, boilerplate, image resolution, encodings, and bad input."""

from __future__ import annotations

import gzip
import json
import os
import random
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ingestfix import BOILER, BOILER_WORDS, FOOTER, bomb_png, make_site, page, png

from vloom.doc import read_documents
from vloom.ingest.base import IngestOptions
from vloom.ingest.html import MAX_PAGE_BYTES, decode_html, extract_page
from vloom.ingest.run import run_ingest
from vloom.ledger import Ledger


def _ingest(inputs, out: Path, **kw) -> tuple[Ledger, list]:
    opts = IngestOptions(out_dir=out, **kw)
    led = run_ingest("html", list(inputs), out, opts, quiet=True)
    return led, list(read_documents(out))


def test_site_reading_order_boilerplate_and_images(tmp_path):
    site = tmp_path / "site"
    files = make_site(site)
    led, docs = _ingest([site], tmp_path / "out")
    assert (led.input, led.kept, led.n_dropped, led.n_rejected) == (3, 3, 0, 0)
    assert [d.url for d in docs] == ["index.html", "docs/guide.html", "docs/deeper/leaf.htm"]

    home, guide, leaf = docs
    kinds = [k for k, _ in home.items()]
    assert kinds == ["text", "image", "text", "image"]
    assert home.texts[0] == "Welcome\n\nFirst paragraph of the home page."
    # a caption is the image's field, not the page's text
    assert home.texts[2] == "After the figure.\n\none\ntwo"
    # the figure's image is the file with a space in its name (percent-encoded, ?query stripped)
    assert home.images[1] == files["img/a b.png"] and home.images[3] == files["img/photo.jpg"]
    meta = home.metadata["images"]
    assert meta[0]["alt"] == "A picture" and meta[0]["caption"] == "The caption"
    assert meta[0]["src"] == "img/a b.png" and meta[0]["format"] == "png"
    assert meta[1]["title"] == "Photo" and (meta[1]["width"], meta[1]["height"]) == (20, 20)
    assert home.metadata["title"] == "Home" and home.language == "en"

    # div.figure (DocBook): caption from its title; <pre> verbatim; table rows and cells; ../ path
    g = [x for _, x in guide.items()]
    assert g[0] == "Guide\n\nIntro line\nsecond line"
    assert g[1] == files["docs/fig/diagram.png"]
    assert guide.metadata["images"][0]["caption"] == "Figure 1. A diagram"
    assert g[2] == "  code  block\n    indented\n\nKey\tValue\na\t1\n\nLogo again:"
    assert g[3] == files["img/logo.png"] and g[4] == "inline."
    # <article> is the main content; "/img/..." is relative to the input root; lang -> language
    assert [x for _, x in leaf.items()] == ["Leaf text.", files["img/photo.jpg"]]
    assert leaf.language == "de"

    for d in docs:
        for w in BOILER_WORDS:
            assert w not in d.text, (d.url, w)
        assert files["img/prev.png"] not in d.images  # the navheader's arrow went with it
    im = led.extra["images"]
    assert im["references"] == im["attached"] == 5 and im["by_origin"]["local"]["attached"] == 5
    assert json.loads((tmp_path / "out" / "ledger.json").read_text())["images"]["attached"] == 5


def test_class_rules_do_not_eat_whole_page(tmp_path):
    # layout flags ("has-sidebar") are not boilerplate; inline DocBook spans named *menu* stay
    body = (
        '<div class="page has-sidebar"><p>Open <span class="guimenu">Filters</span> and '
        '<span class="menuchoice">Blur</span>.</p></div>'
    )
    assert extract_page(page("t", body)).items == ["Open Filters and Blur."]
    # a layout wrapper whose name looks like boilerplate keeps its text (not its cookie banner)
    words = " ".join(f"word{i}" for i in range(30))
    wrapped = f'<div class="sidebar-layout"><p>{words}</p><div class="cookie">Cookies!</div></div>'
    assert extract_page(page("t", wrapped)).items == [words]


def test_docbook_sidebar_is_prose_but_a_link_sidebar_is_not():
    tip = " ".join(f"tip{i}" for i in range(40))
    links = "".join(f'<li><a href="/{i}">link{i} words here</a></li>' for i in range(15))
    body = (
        '<ul class="docnav top"><li><a href="p.html">Prev</a></li></ul>'
        '<div class="chapter" lang="fr-FR"><div class="para">Para one.</div>'
        f'<div class="para">Para two.</div><div class="sidebar"><p class="title">TIP</p>'
        f'<div class="para">{tip}</div></div></div><div id="sidebar"><ul>{links}</ul></div>'
    )
    head = '<head><link rel="Canonical" href="https://ex.org/c.html"></head>'
    html = f"<html>{head}<body>{body}</body></html>"  # no lang on <html>: found on the content
    p = extract_page(html)
    assert p.items == [f"Para one.\n\nPara two.\n\nTIP\n\n{tip}"] and p.lang == "fr-FR"
    assert p.canonical == "https://ex.org/c.html"


def test_main_content_wins_over_the_rest(tmp_path):
    body = "<div><p>Outside main.</p></div><main><p>Inside main.</p></main><p>Also outside.</p>"
    assert extract_page(page("t", body)).items == ["Inside main."]
    body = '<div role="main"><header><h1>Article title</h1></header><p>Body.</p></div>'
    assert extract_page(page("t", body)).items == ["Article title\n\nBody."]


def test_encodings():
    text = "Привет, мир"
    cp1251 = f'<html><head><meta charset="windows-1251"></head><body><p>{text}</p></body></html>'
    assert extract_page(cp1251.encode("cp1251")).items == [text]
    latin = "<html><body><p>café déjà</p></body></html>".encode("latin-1")  # no declaration
    assert extract_page(latin).items == ["café déjà"]
    assert decode_html(b"\xef\xbb\xbf<p>x</p>") == "<p>x</p>"
    utf16 = "\ufeff<html><body><p>naïve</p></body></html>".encode("utf-16-le")
    assert extract_page(utf16).items == ["naïve"]
    # the transport's charset wins over a wrong meta tag
    wrong = f'<meta charset="iso-8859-1"><p>{text}</p>'.encode("cp1251")
    assert extract_page(wrong, "windows-1251").items == [text]


def test_data_uri_srcset_and_remote_without_fetch(tmp_path):
    import base64

    site = tmp_path / "site"
    site.mkdir()
    img = png(7)
    b64 = base64.b64encode(img).decode()
    body = (
        f'<p>a</p><img src="data:image/png;base64,{b64}" alt="inline">'
        '<p>b</p><img srcset="pic.png 1x, pic2.png 2x"><p>c</p>'
        '<img src="https://example.com/remote.png"><img src="data:image/png;base64,!!!">'
        '<img src="javascript:alert(1)"><img src=""><p>d</p>'
    )
    (site / "p.html").write_text(page("t", body))
    (site / "pic.png").write_bytes(png(8))
    led, docs = _ingest([site], tmp_path / "out")
    (doc,) = docs
    assert doc.images[1] == img and doc.images[3] == png(8)
    assert doc.texts[4] == "c\n\nd"
    im = led.extra["images"]
    assert im["attached"] == 2 and im["references"] == 6
    assert im["missing"] == {"remote_not_fetched": 1, "unsupported_src": 1, "no_src": 1}
    assert im["rejected"] == {"not_an_image": 1}  # the broken base64 decodes to junk bytes
    reasons = sorted(m["reason"] for m in doc.metadata["images_missing"])
    assert reasons == ["no_src", "not_an_image", "remote_not_fetched", "unsupported_src"]


def test_fetch_on_downloads_remote_images(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "r.png").write_bytes(png(11))
    (served / "fake.png").write_text("not an image at all")
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        site = tmp_path / "site"
        site.mkdir()
        body = (
            f'<p>x</p><img src="{base}/r.png"><img src="{base}/fake.png"><img src="{base}/no.png">'
        )
        (site / "p.html").write_text(page("t", body))
        led, docs = _ingest(
            [site], tmp_path / "out", fetch=True, fetch_timeout=5.0, fetch_allow=["127.0.0.1/32"]
        )
    finally:
        server.shutdown()
    assert docs[0].images == [None, png(11)]
    im = led.extra["images"]
    assert im["by_origin"]["remote"] == {"references": 3, "attached": 1}
    assert im["rejected"] == {"not_an_image": 1} and sum(im["missing"].values()) == 1


def test_bad_images_are_rejected_with_reasons(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "bomb.png").write_bytes(bomb_png())
    assert (site / "bomb.png").stat().st_size < 1000
    (site / "text.png").write_text("I am text pretending to be a PNG\n" * 10)
    (site / "cut.png").write_bytes(png(9, 64, 64)[:200])
    (site / "ok.png").write_bytes(png(10))
    body = (
        '<p>t</p><img src="bomb.png"><img src="text.png"><img src="cut.png">'
        '<img src="ok.png"><img src="nope.png">'
    )
    (site / "p.html").write_text(page("t", body))
    led, docs = _ingest([site], tmp_path / "out")
    assert docs[0].images == [None, png(10)]
    im = led.extra["images"]
    assert im["rejected"] == {"decompression_bomb": 1, "not_an_image": 1, "undecodable_image": 1}
    assert im["missing"] == {"file_not_found": 1}


def test_paths_escaping_the_input_root_are_not_read(tmp_path):
    secret = png(12)
    (tmp_path / "secret.png").write_bytes(secret)
    site = tmp_path / "a" / "site"
    (site / "sub").mkdir(parents=True)
    (site / "sub" / "link.png").symlink_to(tmp_path / "secret.png")
    (site / "sub" / "ok.png").write_bytes(png(13))
    body = (
        '<p>t</p><img src="../../../secret.png"><img src="../../../../../../secret.png">'
        f'<img src="link.png"><img src="file://{tmp_path}/secret.png"><img src="ok.png">'
    )
    (site / "sub" / "p.html").write_text(page("t", body))
    led, docs = _ingest([site], tmp_path / "out")
    assert docs[0].images == [None, png(13)]
    assert led.extra["images"]["missing"] == {"outside_root": 4}
    assert [m["src"] for m in docs[0].metadata["images_missing"]] == [
        "../../../secret.png",
        "../../../../../../secret.png",
        "link.png",
        f"file://{tmp_path}/secret.png",
    ]
    shard = next((tmp_path / "out").glob("*.parquet")).read_bytes()
    assert secret not in shard


def test_deep_nesting_is_rejected_and_the_run_goes_on(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    n = 100_000
    (site / "a_deep.html").write_text("<html><body>" + "<div>" * n + "x" + "</div>" * n)
    (site / "b_medium.html").write_text("<p>y</p>" + "<span>" * 5000 + "z" + "</span>" * 5000)
    (site / "c_ok.html").write_text(page("t", "<p>fine</p>"))
    (site / "d_empty.html").write_text(page("t", BOILER + FOOTER))
    (site / "e_bad.html").write_bytes(bytes(random.Random(0).randrange(256) for _ in range(3000)))
    led, docs = _ingest([site], tmp_path / "out")
    assert led.rejected == {"html_too_deep": 2}
    assert led.dropped == {"html": {"no_content": 1}}
    assert [d.url for d in docs] == ["c_ok.html", "e_bad.html"]  # binary junk decodes, is text
    assert led.input == 5 and led.kept == 2


def test_nothing_written_outside_out(tmp_path):
    site = tmp_path / "site"
    make_site(site)

    def tree() -> dict[str, float]:
        return {
            str(p): p.stat().st_mtime_ns
            for p in tmp_path.rglob("*")
            if "out" not in p.relative_to(tmp_path).parts
        }

    before = tree()
    _ingest([site], tmp_path / "out")
    assert tree() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ledger.json",
        "shard-00000.parquet",
    ]


GIMP = Path("/usr/share/gimp/2.0/help/en")


@pytest.mark.skipif(
    not GIMP.is_dir(), reason="gimp-help-en not installed (apt-get install gimp-help-en)"
)
def test_gimp_manual_sample(tmp_path):
    pages = sorted(p for p in GIMP.glob("*.html"))
    sample = random.Random(0).sample(pages, 40)
    led, docs = _ingest(sample, tmp_path / "out")
    assert led.input == 40 and led.kept + led.n_dropped == 40
    im = led.extra["images"]
    assert im["attached"] >= 0.95 * im["references"] and im["attached"] > 20
    assert sum(d.n_images for d in docs) == im["attached"]
    for d in docs:
        assert "Report a documentation error" not in d.text  # the DocBook navfooter
        assert "Prev" not in [m["alt"] for m in d.metadata["images"]]  # its arrows
        assert d.text.strip()
    assert os.path.getsize(next((tmp_path / "out").glob("*.parquet"))) > 0


def test_page_symlinked_out_of_the_input_dir_and_fifo_page_rejected(tmp_path):
    site, outside = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    outside.mkdir()
    (site / "a.html").write_text(page("A", "<p>Inside page.</p>"))
    (outside / "secret.html").write_text(page("Secret", "<p>Outside page.</p>"))
    (site / "b_link.html").symlink_to(outside / "secret.html")
    os.mkfifo(site / "c_pipe.html")  # opening it for reading would block forever
    led, docs = _ingest([site], tmp_path / "out")
    assert [d.texts for d in docs] == [["Inside page."]]
    assert led.input == 3 and led.rejected == {"outside_root": 1, "unreadable_file": 1}
    # a page the user names is read wherever it lies
    led, docs = _ingest([site / "b_link.html"], tmp_path / "out_named")
    assert [d.texts for d in docs] == [["Outside page."]]


def test_fifo_or_directory_named_as_an_image_is_not_read(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    os.mkfifo(site / "pipe.png")
    (site / "dir.png").mkdir()
    (site / "p.html").write_text(page("P", '<p>Text.</p><img src="pipe.png"><img src="dir.png">'))
    led, docs = _ingest([site], tmp_path / "out")
    assert docs[0].texts == ["Text."] and led.extra["images"]["missing"] == {"not_a_file": 2}


def test_processing_instruction_in_the_body_does_not_crash():
    # lexbor gives <?php ... ?> a node without a tag (2 of the 400 extraction-dev pages)
    html = page("PI", "<div><p>Before.</p><?php if (x) { y(); } ?><p>After.</p></div>")
    assert extract_page(html).items == ["Before.\n\nAfter."]


def test_meta_refresh_redirects_are_dropped_and_self_reloads_kept(tmp_path):
    """A page whose <meta http-equiv=refresh> sends the reader elsewhere within 5 s is a
    redirect (rustdoc leaves one per moved item), counted, not a document; a page that reloads
    itself (a news front page every 10 minutes) or moves on only after a minute is content."""
    site = tmp_path / "site"
    site.mkdir()
    body = "<p>Breaking: the council voted on the new bridge late last night.</p>"
    pages = {
        "a_rustdoc.html": '<head><meta http-equiv="refresh" content="0;URL=../../../alloc/'
        'btree_map/struct.BTreeMap.html"></head><body><p>Redirecting to <a href="x.html">'
        "../../../alloc/btree_map/struct.BTreeMap.html</a>...</p></body>",
        "b_quoted.html": "<META HTTP-EQUIV=Refresh CONTENT=\"2; url='https://example.org/new'\">"
        + body,
        "c_reload.html": '<meta http-equiv="refresh" content="600">' + body,
        "d_slow.html": '<meta http-equiv="refresh" content="60; url=/elsewhere">' + body,
        "e_no_time.html": '<meta http-equiv="refresh" content="url=/elsewhere">' + body,
        "f_plain.html": page("t", body + '<img src="pic.png" alt="x">'),
        "g_redirect_with_image.html": '<meta http-equiv="refresh" content="0; url=f_plain.html">'
        + body
        + '<img src="pic.png" alt="x">',
    }
    for name, html in pages.items():
        (site / name).write_text(html)
    (site / "pic.png").write_bytes(png(1))
    led, docs = _ingest([site], tmp_path / "out")
    assert led.dropped == {"html": {"redirect": 3}}
    assert [d.url for d in docs] == [
        "c_reload.html",
        "d_slow.html",
        "e_no_time.html",
        "f_plain.html",
    ]
    assert led.to_dict()["images"]["missing"] == {"page_dropped": 1}
    led.check()


@pytest.mark.parametrize(
    "content, url",
    [
        ("0;URL=../a.html", "../a.html"),
        ("0; url = 'http://x.org/a b' trailing", "http://x.org/a b"),
        ('5,"/q"', "/q"),
        (".5 ; URL=/h", "/h"),
        ("5.9; url=/late", "/late"),  # whole seconds: 5
        ("6; url=/late", ""),
        ("300", ""),
        ("0", ""),
        ("url=/x", ""),
        ("", ""),
    ],
)
def test_meta_redirect_reads_refresh_content_as_browsers_do(content, url):
    from vloom.ingest.html_extract import meta_redirect

    assert meta_redirect(content) == url


def test_code_blocks_lose_their_copy_button_and_headings_their_permalink():
    """Documentation themes put a "copy" button inside <pre> and a permalink mark in each
    heading (Sphinx's ¶, rustdoc's §, Node's #): page furniture, not text."""
    html = (
        '<body><h2 id="use"><a class="doc-anchor" href="#use">§</a>Usage</h2>'
        "<p>Import the module before you call it from your own code.</p>"
        '<h3 id="ex">Example<a class="headerlink" href="#ex" title="Permalink">¶</a></h3>'
        "<pre><code>import fs from 'node:fs';\n  fs.unlinkSync(path);</code>"
        '<button class="copy-button">copy</button><script>hl()</script></pre>'
        "<pre>plain   block\n  kept as written</pre>"
        '<p>See <a href="#use">Usage</a> and footnote <a href="#fn1">1</a>.</p>'
        '<p><a href="#top">↑</a></p></body>'
    )
    text = "\n\n".join(i for i in extract_page(html).items if isinstance(i, str))
    assert text.split("\n\n") == [
        "Usage",
        "Import the module before you call it from your own code.",
        "Example",
        "import fs from 'node:fs';\n  fs.unlinkSync(path);",
        "plain   block\n  kept as written",
        "See Usage and footnote 1.",
    ]


def test_gzipped_pages_read_as_pages_and_bad_gzip_counted(tmp_path):
    """Debian ships many manual pages as page.html.gz: walked and read like page.html; a
    stream that does not decompress, or inflates past the page cap, is a counted rejection."""
    site = tmp_path / "site"
    site.mkdir()
    html = page("G", '<p>A page that was gzipped.</p><img src="fig.png" alt="fig">').encode()
    (site / "fig.png").write_bytes(png(7))
    (site / "plain.html").write_bytes(html)
    (site / "zipped.html.gz").write_bytes(gzip.compress(html))
    (site / "truncated.html.gz").write_bytes(gzip.compress(html)[:-12])
    (site / "not_gzip.htm.gz").write_bytes(html)
    (site / "bomb.xhtml.gz").write_bytes(gzip.compress(b"<p>" + b" " * (MAX_PAGE_BYTES + 1)))
    (site / "notes.txt.gz").write_bytes(gzip.compress(b"not a page"))  # not walked
    led, docs = _ingest([site], tmp_path / "out")
    by_url = {d.url: d for d in docs}
    assert sorted(by_url) == ["plain.html", "zipped.html.gz"]
    assert list(by_url["zipped.html.gz"].items()) == list(by_url["plain.html"].items())
    assert by_url["zipped.html.gz"].images[1] == png(7)
    assert led.input == 5 and led.rejected == {"gzip_corrupt": 2, "page_too_large": 1}
