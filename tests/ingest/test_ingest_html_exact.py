"""What the HTML extraction's faster paths rely on: each one finds what the lexbor selector or the
re.I regex it replaced found (lexbor's value tests are case-sensitive, an element it matches by
two selectors of one query comes twice, re.I lets four non-ASCII letters stand for ASCII ones)."""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser

from vloom.ingest import html_blocks
from vloom.ingest.html_extract import (
    _PAGE_SEL,
    _SKIP_ATTRS_SEL,
    _VALUED_SEL,
    _page_nodes,
    _skipped_by_value,
    extract_page,
)

PROSE = "This paragraph is the article's own prose, long enough to count as the main content. " * 3

# the selectors the faster paths replaced
OLD_SKIP_SEL = ", ".join(
    [
        _SKIP_ATTRS_SEL,
        "[aria-hidden=true]",
        '[style*="display:none"]',
        '[style*="display: none"]',
        '[style*="visibility:hidden"]',
        '[style*="visibility: hidden"]',
    ]
    + [
        f"[role={r}]"
        for r in "navigation banner contentinfo complementary search menu menubar dialog "
        "alertdialog".split()
    ]
)


def test_valued_attributes_match_lexbor_value_selectors():
    values = ["navigation", "Navigation", " navigation", "navig&#97;tion", "true", "TRUE", "", "x"]
    styles = ["display:none", "DISPLAY:NONE", "a;display: none", "visibility:hidden", "color:red"]
    cells = [f'<div role="{v}" aria-hidden="{v}">r</div>' for v in values]
    cells += [f'<p style="{s}">s</p>' for s in styles]
    cells += ["<p ROLE=navigation>u</p>", "<p hidden>h</p>", '<p class="sr-only">c</p>']
    for doctype in ("<!DOCTYPE html>", ""):  # standards and quirks mode
        body = LexborHTMLParser(f"{doctype}<body>{''.join(cells)}</body>").body
        old = {n.mem_id for n in body.css(OLD_SKIP_SEL)}
        new = {n.mem_id for n in body.css(_SKIP_ATTRS_SEL)}
        new |= {n.mem_id for n in body.css(_VALUED_SEL) if _skipped_by_value(n)}
        assert new == old
        # role "navigation" as written, by &#97; and ROLE=; aria-hidden "true"; three styles;
        # [hidden]; .sr-only
        assert len(old) == 9


def test_page_nodes_as_each_selector_alone():
    html = (
        '<html><head><link rel="Canonical" href="c1"><link rel="canonical x" href="c0">'
        '</head><body><div role="main" id="a"></div><main role="main" id="b"></main>'
        '<article role="main" id="c"></article><base href="b1"><base id="nohref"></body></html>'
    )
    parser = LexborHTMLParser(html)
    assert len(parser.css(_PAGE_SEL)) > len({n.mem_id for n in parser.css(_PAGE_SEL)})  # dupes
    found = _page_nodes(parser)
    for key, sel in {
        "base": "base[href]",
        "canonical": 'link[rel="canonical" i][href]',
        "main": "main",
        "role_main": "[role=main]",
        "article": "article",
    }.items():
        assert [n.mem_id for n in found[key]] == [n.mem_id for n in parser.css(sel)], key


def test_lone_article_with_role_main_is_the_root():
    # <article role=main> is listed twice by the one query; it is still the page's one article
    html = (
        f"<html><body><div class='menu'><a href='/'>Home</a> <a href='/a'>All</a></div>"
        f"<div><p>{PROSE}</p></div>"
        f"<article role='main'><h1>Title</h1><p>{PROSE}</p></article></body></html>"
    )
    page = extract_page(html)
    text = "\n".join(i for i in page.items if isinstance(i, str))
    assert text.startswith("Title") and text.count("article's own prose") == 3


def test_call_to_action_without_re_i_finds_the_same():
    texts = [
        "Subscribe to our newsletter",
        "SUBSCRİBE now",  # dotted capital I: re.I matches it to "i"
        "subscrıbe",  # dotless i
        "Follow us on Facebook and Twitter",
        "Share on faceboo\u212a",  # Kelvin sign
        "Straße und Café: folgen Sie uns",
        "Nothing to see here, just prose about pinterest boards",
        "\u017fubscribe",  # long s
    ]
    for t in texts:
        names = {m.group().lower() for m in html_blocks._NETWORKS.finditer(t)}
        old = (
            bool(html_blocks._CTA.search(t)) or len(names) >= 2 or (len(names) == 1 and len(t) < 80)
        )
        assert html_blocks._is_call_to_action(t) == old, t
        assert html_blocks._names_network(t) == bool(html_blocks._NETWORKS.search(t)), t
